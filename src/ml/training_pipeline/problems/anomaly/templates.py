"""Log templates mined with Drain3, kept with the model so that serving maps new lines to the same ids.

Drain (He et al., "Drain: An Online Log Parsing Approach with Fixed Depth Tree", ICWS 2017) groups
messages into templates online: a message goes down a tree of fixed depth by its token count and first
tokens, then joins the most similar template of that leaf (or starts a new one), and the template's
differing tokens become ``<*>``. `Drain3 <https://github.com/logpai/Drain3>`_ is its maintained streaming
implementation. This module wraps it:

- :meth:`LogTemplates.mine` learns while it reads (training, or any file read for the first time): each
  message gets its template's id, ``D<cluster id>``, stable as the template generalises;
- :meth:`LogTemplates.match` only looks up (serving): a message no learned template covers gets
  :data:`UNSEEN_TEMPLATE`, the id a stored model's encoder treats as unseen;
- :meth:`LogTemplates.to_dict` / :meth:`from_dict`: the settings and Drain3's own state (its compressed
  jsonpickle snapshot) as JSON, stored in the version's ``feature_schema.json``. Like a ``.keras`` file, a
  snapshot builds objects when loaded: load only versions you trust.

Drain3 0.9.11 pins ``cachetools==4.2.1`` and ``jsonpickle==1.5.1`` exactly; it runs unchanged on current
releases of both (this module's tests), so a project that also needs a newer cachetools (MLflow) installs
it with ``pip install --no-deps drain3`` next to ``jsonpickle`` (see docs/anomaly.md).

Example:
    >>> templates = LogTemplates(DrainSettings(similarity=0.4))
    >>> templates.mine(["disk sda1 failed", "disk sdb2 failed", "user 7 logged in"])
    ['D1', 'D1', 'D2']
    >>> templates.match(["disk sdc3 failed", "fan stopped"])
    ['D1', 'D?']
    >>> templates.template("D1")
    'disk <*> failed'
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

UNSEEN_TEMPLATE = "D?"
"""The id :meth:`LogTemplates.match` gives a message that no learned template covers."""


@dataclass(frozen=True)
class DrainSettings:
    """Drain's parameters for one log layout (LogPAI's benchmark settings per data set where it has them).

    Attributes:
        similarity: share of equal tokens above which a message joins a template (Drain's ``st``).
        depth: depth of the parse tree, root and leaf included (Drain3's ``depth``; at least 3).
        masks: regular expressions whose matches are replaced by ``<*>`` before mining (ids, addresses).
        max_children: most children of one tree node.
    """

    similarity: float = 0.4
    depth: int = 4
    masks: tuple[str, ...] = ()
    max_children: int = 100

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "masks": list(self.masks)}

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> DrainSettings:
        return cls(**{**spec, "masks": tuple(spec.get("masks", ()))})


def _drain3():
    try:
        from drain3 import TemplateMiner
        from drain3.masking import MaskingInstruction
        from drain3.memory_buffer_persistence import MemoryBufferPersistence
        from drain3.template_miner_config import TemplateMinerConfig
    except ImportError:  # a ValueError, as the other missing extras: one line from atb, not a traceback
        raise ValueError("Raw log files are parsed with Drain3, which is not installed. Accepted: pip install "
                          "'atb-ml[logs]' (or, next to MLflow: pip install --no-deps drain3 jsonpickle), or a "
                          "structured log CSV") from None
    return TemplateMiner, MaskingInstruction, MemoryBufferPersistence, TemplateMinerConfig


@dataclass
class LogTemplates:
    """Drain3's template miner with the settings it was built with.

    Args:
        settings: Drain's parameters.
        state: a snapshot from :meth:`to_dict` to start from (``None``: no template yet).
    """

    settings: DrainSettings = field(default_factory=DrainSettings)
    state: str | None = None

    def __post_init__(self):
        template_miner, masking, memory, miner_config = _drain3()
        config = miner_config()
        config.drain_sim_th = self.settings.similarity
        config.drain_depth = self.settings.depth
        config.drain_max_children = self.settings.max_children
        config.masking_instructions = [masking(pattern, "*") for pattern in self.settings.masks]
        config.mask_prefix, config.mask_suffix = "<", ">"
        config.profiling_enabled = False
        persistence = memory()
        persistence.state = None if self.state is None else self.state.encode("ascii")
        self._persistence = persistence
        self._miner = template_miner(persistence_handler=persistence, config=config)
        # snapshots only when asked (to_dict): Drain3 would otherwise serialise its whole tree every 5 minutes
        self._miner.config.snapshot_interval_minutes = float("inf")

    def mine(self, messages: Iterable[str]) -> list[str]:
        """Each message's template id, learning as it goes (new templates, templates generalised)."""
        return [f"D{self._miner.add_log_message(message)['cluster_id']}" for message in messages]

    def match(self, messages: Iterable[str]) -> list[str]:
        """Each message's learned template id, or :data:`UNSEEN_TEMPLATE`; learns nothing."""
        ids = []
        for message in messages:
            cluster = self._miner.match(message, full_search_strategy="fallback")
            ids.append(UNSEEN_TEMPLATE if cluster is None else f"D{cluster.cluster_id}")
        return ids

    def template(self, template_id: str) -> str:
        """The text of a template (``<*>`` where its messages differ); ``''`` for an unknown id."""
        if not template_id.startswith("D") or not template_id[1:].isdigit():
            return ""
        cluster = self._miner.drain.id_to_cluster.get(int(template_id[1:]))
        return "" if cluster is None else cluster.get_template()

    def templates(self, template_ids: Sequence[str]) -> list[str]:
        return [self.template(t) for t in template_ids]

    def __len__(self) -> int:
        return len(self._miner.drain.clusters)

    def to_dict(self) -> dict[str, Any]:
        """The settings and Drain3's compressed snapshot (ASCII), for a JSON schema."""
        self._miner.save_state("stored with the model")
        return {"settings": self.settings.to_dict(), "state": self._persistence.state.decode("ascii"),
                "templates": len(self)}

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> LogTemplates:
        return cls(DrainSettings.from_dict(spec["settings"]), spec["state"])
