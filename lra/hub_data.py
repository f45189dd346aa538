"""The Hub as a source of LRA data: kept under this name for `from lra.hub_data import HUB_SOURCES`.

The code lives in `lra.builders.hub`, next to the builders of the other sources.
"""

from .builders.hub import HUB_SOURCES, HubSource, load_lra_from_hub

__all__ = ["HUB_SOURCES", "HubSource", "load_lra_from_hub"]
