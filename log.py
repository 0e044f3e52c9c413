"""One log line per decision, to syslog (the journal picks it up) and to stderr."""
from __future__ import annotations

import logging
import logging.handlers
import os


def decision_logger(ident: str) -> logging.Logger:
    """A logger that writes `ident: message` to syslog when /dev/log exists, and to stderr."""
    logger = logging.getLogger(ident)
    if logger.handlers:
        return logger
    logger.setLevel(logging.INFO)
    logger.propagate = False
    stderr = logging.StreamHandler()
    stderr.setFormatter(logging.Formatter(f"{ident}: %(message)s"))
    logger.addHandler(stderr)
    if os.path.exists("/dev/log"):
        try:
            syslog = logging.handlers.SysLogHandler(address="/dev/log",
                                                    facility=logging.handlers.SysLogHandler.LOG_DAEMON)
            syslog.setFormatter(logging.Formatter(f"{ident}[{os.getpid()}]: %(message)s"))
            logger.addHandler(syslog)
        except OSError:
            pass  # no syslog socket we may use: stderr still has every line
    return logger
