"""`camtrap-fast app RUN`: a local page to classify dropped photos with a run's model, as `predict` does.

`classifier` turns uploaded files into results through predict's own code path (the run's shard-step resize or
MegaDetector crop rule, then the eval transform), `page` is the page, `server` the standard library's HTTP server
around them. Imported only by the `app` command.
"""
