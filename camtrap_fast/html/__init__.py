"""Self-contained HTML reports: RUN/report.html, RUN/heads/report.html and STUDY/report.html.

`page` builds documents (inline style, script and data: they open from disk with no network), `thumbs` reads
photo thumbnails from the shards under a byte budget, `photos` picks the photos a run's page shows,
`run_files` reads a run's folders, and `run_report`, `heads_report` and `study_report` assemble the pages.
Imported on first use, so building the command line pays for none of it.
"""

from camtrap_fast.lazy import lazy_attributes

_EXPORTS = {
    "write_run_report": "camtrap_fast.html.run_report",
    "write_heads_report": "camtrap_fast.html.heads_report",
    "write_study_report": "camtrap_fast.html.study_report",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_attributes(__name__, _EXPORTS)
