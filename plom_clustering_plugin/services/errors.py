# SPDX-License-Identifier: AGPL-3.0-or-later
"""Errors that services raise for the user to read."""


class JobError(Exception):
    """A request about a job that cannot be done; the message is for the user."""


class StaleEdit(JobError):
    """Someone else changed the groups since the editor loaded them."""

    def __init__(self, message: str = "") -> None:
        """Use the standard explanation unless given another."""
        super().__init__(
            message
            or "Someone else changed these groups since you loaded the page; nothing"
            " was changed. Reload to see their changes, then try again."
        )
