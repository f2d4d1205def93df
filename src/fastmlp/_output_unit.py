"""The output unit matched to the cost: warnings for a squashing output before a loss on
logits (double squashing), and for a classification head trained with squared error."""
import warnings

from fastmlp.layers.activations import Activation, Softmax

#: Losses that apply their own sigmoid / softmax to the model's outputs (logits).
_ON_LOGITS = ("CrossEntropyLoss", "BCEWithLogitsLoss", "MultiMarginLoss")


def output_unit(model):
    """``(name, how)`` of the model's final squashing unit, or ``(None, None)``:
    name is "softmax" or "sigmoid"; how says where it sits (for the remedy)."""
    layers = getattr(model, "flat_layers", None)
    if not layers:
        return None, None
    last = layers[-1]
    if isinstance(last, Softmax):
        return "softmax", "remove the final Softmax layer"
    if isinstance(last, Activation) and last.name == "sigmoid":
        return "sigmoid", "remove the final Sigmoid layer"
    act = getattr(last, "activation", None)
    if isinstance(act, Activation) and act.name == "sigmoid":
        return "sigmoid", f"give the last {type(last).__name__} activation=None"
    return None, None


def check_output_unit(model, loss):
    """Warn (UserWarning) when the model's output unit does not suit ``loss``.

    * a Softmax/Sigmoid output before CrossEntropyLoss, BCEWithLogitsLoss or
      MultiMarginLoss: the loss squashes its input again (softmax of probabilities), so
      the gradients are wrong for what the model means and learning stalls;
    * a Softmax output (a classification head) with MSELoss: squared error on a
      saturating unit has a vanishing gradient where the unit is confidently wrong (the
      lectures' reason to pair softmax with cross-entropy); train logits with
      CrossEntropyLoss instead. (A Sigmoid with MSELoss is left alone: it is also how a
      regression onto [0, 1] is written.)
    """
    unit, how = output_unit(model)
    if unit is None:
        return
    name = type(loss).__name__
    if name in _ON_LOGITS:
        warnings.warn(f"the model ends in a {unit} but {name} expects logits and applies "
                      f"its own squashing (double {unit}): {how}; apply the {unit} to "
                      "Trainer.predict(X) when you need probabilities",
                      UserWarning, stacklevel=3)
    elif name == "MSELoss" and unit == "softmax":
        warnings.warn(f"the model ends in a {unit} (a classification head) trained with "
                      f"MSELoss: its gradient vanishes where the {unit} saturates; {how} "
                      "and use CrossEntropyLoss", UserWarning, stacklevel=3)
