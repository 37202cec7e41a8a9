"""What the dashboard's forms change: each takes the store and the posted form and
returns the page to go back to. They run only after ``security.Guard`` allowed the POST;
a bad field raises ``ValueError`` (or ``KeyNotFound``) with a message for the operator."""

from __future__ import annotations

from collections.abc import Callable

from mailspool.errors import KeyNotFound
from mailspool.ops import admin
from mailspool.spool.keys import is_safe_name
from mailspool.stores.base import Store
from mailspool.web import feedback_pages

__all__ = ["CHANGES", "Change"]

Change = Callable[[Store, dict[str, str]], str]


def retry(store: Store, form: dict[str, str]) -> str:
    """Re-queue one failed e-mail (``id``) or all of them (``all=1``)."""
    if form.get("all") == "1":
        items = admin.list_failed(store)
    else:
        failed_id = form.get("id", "")
        if not is_safe_name(failed_id):
            raise ValueError(
                "the id is not a failed e-mail's id (at most 200 characters, "
                "no '/', '..' or control character)"
            )
        try:
            items = [admin.show_failed(store, failed_id)]
        except KeyNotFound:
            raise KeyNotFound("no such failed e-mail (already retried?)") from None
    admin.retry_failed(store, items)
    return "/failed"


def suppress(store: Store, form: dict[str, str]) -> str:
    feedback_pages.add_suppression(store, form.get("address", ""), form.get("reason", ""))
    return "/suppression"


def unsuppress(store: Store, form: dict[str, str]) -> str:
    feedback_pages.remove_suppression(store, form.get("address", ""))
    return "/suppression"


#: Path of each form's POST -> what it changes.
CHANGES: dict[str, Change] = {
    "/failed/retry": retry,
    "/suppression/add": suppress,
    "/suppression/remove": unsuppress,
}
