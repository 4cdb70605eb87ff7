"""Prompt texts: the persona + intervention prefix (shared) and one branch per item.

Placeholders are replaced with ``str.replace`` on a fixed set of names; study text is
never formatted or evaluated. Options are shown with letters; the letter order may be
reversed per persona (counterbalancing), and ``option_order`` records it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from collectors.population import Persona
from collectors.study import ArmSpec, ItemSpec, Study, StudyError

__all__ = ["LETTERS", "ItemPrompt", "Prompts", "Turn"]

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class ItemPrompt:
    item: ItemSpec
    order: tuple[int, ...]  # displayed position -> canonical option index
    text: str  # the branch text appended to the prefix
    labels: tuple[str, ...]  # continuation string of each displayed position (" A", " B", ...)
    regex: str  # the constraint: exactly one of the labels

    def canonical(self, label: str) -> str | None:
        """The option (canonical label) a generated label stands for; None if it is no label."""
        if label not in self.labels:
            return None
        return self.item.options[self.order[self.labels.index(label)]]

    @property
    def option_order(self) -> str:
        return "|".join(str(i) for i in self.order)


@dataclass(frozen=True)
class Turn:
    """One message of a dialogue as the prompts show it: who wrote it and its text (None: no text)."""

    role: str  # 'user' (the simulated user) or 'assistant'
    text: str | None


class Prompts:
    """Builds prompt texts for one study in one style ('completion' or 'chat')."""

    def __init__(self, study: Study, *, style: str, chat_render=None) -> None:
        self.study = study
        self.style = style
        self._render = chat_render  # messages -> text, for chat style
        self.sep = " " if style == "completion" else ""

    # -- completion style ---------------------------------------------------------
    def prefix(self, persona: Persona, arm: ArmSpec, dialogue: Sequence[Turn] = ()) -> str:
        """The unit's shared prefix: persona and intervention (text, or the dialogue so far)."""
        if self.style == "chat":
            return self._render(self._chat_prefix(persona, arm, dialogue), add_generation_prompt=False)
        s = self.study
        head = s.preamble.replace("{persona}", persona.description)
        if s.dialogue is None:
            return head + s.intervention.replace("{text}", arm.intervention)
        return head + s.dialogue.intro + self.lines(dialogue)

    def lines(self, dialogue: Sequence[Turn]) -> str:
        """A completion-style transcript: one ``\\n<label>:<text>`` line per message with text."""
        dlg = self.study.dialogue
        assert dlg is not None
        label = {"user": dlg.user_label, "assistant": dlg.assistant_label}
        return "".join(f"\n{label[t.role]}:{t.text}" for t in dialogue if t.text is not None)

    def user_view(self, persona: Persona, arm: ArmSpec, dialogue: Sequence[Turn]) -> str:
        """What the simulated user's model continues to write its next message."""
        if self.style == "chat":
            return self._render(self._chat_prefix(persona, arm, dialogue), add_generation_prompt=True)
        assert self.study.dialogue is not None
        return self.prefix(persona, arm, dialogue) + f"\n{self.study.dialogue.user_label}:"

    def item(self, persona: Persona, arm: ArmSpec, item: ItemSpec, order: tuple[int, ...],
             dialogue: Sequence[Turn] = ()) -> ItemPrompt:
        options = "\n".join(f"{LETTERS[i]}. {item.options[o]}" for i, o in enumerate(order))
        labels = tuple(f"{self.sep}{LETTERS[i]}" for i in range(len(order)))
        regex = "(" + "|".join(re.escape(lab) for lab in labels) + ")"
        if self.style == "chat":
            msgs = self._chat_prefix(persona, arm, dialogue)
            q = f"{item.text}\n{options}\nAnswer with one letter."
            full = self._render([*msgs, {"role": "user", "content": q}], add_generation_prompt=True)
            pre = self._render(msgs, add_generation_prompt=False)
            if not full.startswith(pre):
                raise StudyError("model.prompt_style = 'chat': the chat template does not render a conversation "
                                 "prefix as a text prefix; forked elicitation needs prompt_style = 'completion' "
                                 "with this model")
            text = full[len(pre):]
        else:
            text = self.study.question.replace("{question}", item.text).replace("{options}", options)
        return ItemPrompt(item=item, order=order, text=text, labels=labels, regex=regex)

    def _chat_prefix(self, persona: Persona, arm: ArmSpec, dialogue: Sequence[Turn] = ()) -> list[dict[str, str]]:
        if self.study.dialogue is not None:
            # the simulated user's view: the assistant's messages come to it as 'user' turns
            sys = ("You are role-playing a survey respondent. " + persona.description
                   + " You are talking with an assistant.")
            return [{"role": "system", "content": sys}] + [
                {"role": "user" if t.role == "assistant" else "assistant", "content": t.text}
                for t in dialogue if t.text is not None]
        return [
            {"role": "system", "content": "You are role-playing a survey respondent. " + persona.description},
            {"role": "user", "content": "Please read this text:\n" + arm.intervention},
            {"role": "assistant", "content": "I have read it."},
        ]
