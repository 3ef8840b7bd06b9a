"""The lecture slides' worked examples as programs: the perceptron rule (`perceptron`), gradient
descent on a formula (`descend`), fitting a line (`regression`), decision regions of a trained
classifier (`regions`) and the end-to-end demo (`demo`)."""
