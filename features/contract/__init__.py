"""The data contract: what an input data set looks like, how it is checked and loaded."""
