"""The process's descriptor limit, raised for device connections: each one is a socket."""

from __future__ import annotations

import logging

log = logging.getLogger("fieldtrack.gateway")


def raise_fd_limit() -> tuple[int, int]:
    """Lift the soft RLIMIT_NOFILE to the hard one (often 1,024 soft against 500,000+ hard, so a
    fleet of a few thousand trackers would otherwise be refused with EMFILE); raising the hard
    limit needs CAP_SYS_RESOURCE. Returns (soft, hard) now in force; (0, 0) where there is none."""
    try:
        import resource
    except ImportError:  # Windows: no such limit
        return (0, 0)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1_048_576
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("descriptor limit stays at %d (%s)", soft, exc)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft, hard
