"""Log anomalies: log formats and parsing (:mod:`.formats`), windows of log events
(:mod:`.windows`) and the problem object (:mod:`.problem`).
"""
