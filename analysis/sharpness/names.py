"""The choices of the sharpness tool, in a module without torch (``zoo-analysis --help`` stays fast)."""

# "model": the loss the model returns given labels (its own training loss); the others are
# computed from the logits: "cross_entropy" (integer labels) and "mse" (float targets, or one-hot
# of integer labels), both means over the batch.
LOSSES = ("model", "cross_entropy", "mse")
# how H v is differentiated: "reverse" (vjp of grad, one graph kept and replayed), "forward" (jvp of grad)
MODES = ("reverse", "forward")
