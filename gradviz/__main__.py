"""`python -m gradviz` runs the command line."""
from gradviz.cli import main

main()
