"""Chapter glue: the only part of ``shared`` that notebooks import (besides ``plots``)."""
from shared.chapters.common import open_chapter, say

__all__ = ["open_chapter", "say"]
