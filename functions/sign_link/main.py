"""HTTP entry point `sign_link`."""

import functions_framework
from pacs import guard, http

guard.assert_safe_environment()


@functions_framework.http
def sign_link(request):
    """Not implemented until its issue lands (answers 501)."""
    return http.not_implemented("sign_link")
