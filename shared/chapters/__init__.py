"""Chapter glue: the only part of ``shared`` that notebooks import (besides ``plots``)."""
from shared.chapters.common import open_chapter, say
from shared.chapters.display import count, show_table

__all__ = ["count", "open_chapter", "say", "show_table"]
