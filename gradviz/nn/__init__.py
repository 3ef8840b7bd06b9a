"""Neural networks as graphs: layers (`Module`s that build forward graphs from input nodes),
losses, and the named models of the command line."""
from gradviz.nn.layers import (ELU, AvgPool2d, Conv2d, Dropout, Flatten, LeakyReLU, Linear,
                               MaxPool2d, Maxout, ReLU, Sequential, Sigmoid, Softmax, Step, Tanh)
from gradviz.nn.losses import (binary_cross_entropy, classification_loss, cross_entropy,
                               l2_penalty, mse, one_hot, predicted_classes, rmse)
from gradviz.nn.models import MODELS, build_model, load_model_file, model_from_spec
from gradviz.nn.module import Module, SummaryRow, format_summary

__all__ = [
    "ELU", "AvgPool2d", "Conv2d", "Dropout", "Flatten", "LeakyReLU", "Linear", "MaxPool2d",
    "Maxout", "MODELS", "Module", "ReLU", "Sequential", "Sigmoid", "Softmax", "Step",
    "SummaryRow", "Tanh", "binary_cross_entropy", "build_model", "classification_loss",
    "cross_entropy", "format_summary", "l2_penalty", "load_model_file", "model_from_spec", "mse",
    "one_hot", "predicted_classes", "rmse",
]
