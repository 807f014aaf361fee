"""BABILong's scorer, as booydar/babilong's babilong/metrics.py (`compare_answers`): the first sentence of
the reply, lowercased and cut before any echoed prompt part, must name the gold label and no other of
the task's labels (a label the question names never counts)."""

from __future__ import annotations

from pcbench.core.example import Example

# metrics.py's TASK_LABELS: the words each bAbI task's answers are drawn from.
LOCATIONS = ("bathroom", "bedroom", "garden", "hallway", "kitchen", "office")
TASK_LABELS: dict[str, tuple[str, ...]] = {
    "qa1": LOCATIONS, "qa2": LOCATIONS, "qa3": LOCATIONS, "qa4": LOCATIONS,
    "qa5": ("Bill", "Fred", "Jeff", "Mary", "apple", "football", "milk"),
    "qa6": ("no", "yes"), "qa7": ("none", "one", "three", "two"), "qa8": ("apple", "football", "milk", "nothing"),
    "qa9": ("no", "yes"), "qa10": ("maybe", "no", "yes"), "qa11": LOCATIONS, "qa12": LOCATIONS, "qa13": LOCATIONS,
    "qa14": ("bedroom", "cinema", "kitchen", "office", "park", "school"), "qa15": ("cat", "mouse", "sheep", "wolf"),
    "qa16": ("gray", "green", "white", "yellow"), "qa17": ("no", "yes"), "qa18": ("no", "yes"),
    "qa19": ("e,e", "e,n", "e,s", "n,e", "n,n", "n,w", "s,e", "s,s", "s,w", "w,n", "w,s", "w,w"),
    "qa20": ("bedroom", "bored", "garden", "hungry", "kitchen", "thirsty", "tired"),
}


def first_sentence(output: str) -> str:
    """The reply as the scorer reads it: lowercased, up to its first full stop, and before any
    "<context>", "<example>" or "Question" the model went on to write (lowercased first, so a
    capitalised "Question" no longer matches, as in metrics.py)."""
    output = output.lower().split(".")[0]
    for echo in ("<context>", "<example>", "Question"):
        output = output.split(echo)[0]
    return output


def is_right(target: str, output: str, question: str, labels: tuple[str, ...]) -> bool:
    said = first_sentence(output)
    target = target.lower()
    known = {label.lower() for label in labels}
    named = {label for label in known if label in said} - {label for label in known if label in question.lower()}
    if "," in target and len(target) > 3:  # several labels together (qa8's lists)
        parts = target.split(",")
        return all(part in named for part in parts) and len(named) == len(parts)
    return target in named and len(named) == 1


def babilong(prediction: str, example: Example) -> float:
    """1 when the reply names the gold label alone (the example's task in meta["qa"])."""
    return float(is_right(example.answers[0], prediction, example.question, TASK_LABELS[str(example.meta["qa"])]))
