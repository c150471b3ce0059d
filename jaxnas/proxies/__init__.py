"""Training-free proxies: one file per proxy (or small family), each registered by name.

Use :func:`get_proxy` / :func:`list_proxies`; pool-relative scores (AZ-NAS' rank combination) with
:func:`get_pooled` / :func:`list_pooled` / :func:`apply_pooled`. See :mod:`jaxnas.proxies.registry`
for the contracts.
"""

from jaxnas.proxies.registry import (Pooled, Proxy, apply_pooled, check_supported, expand,
                                     get_pooled, get_proxy, is_pooled, list_pooled, list_proxies,
                                     missing_capabilities, register, register_pooled,
                                     supported_proxies, with_pooled)

__all__ = ["Proxy", "Pooled", "get_proxy", "get_pooled", "list_proxies", "list_pooled",
           "is_pooled", "expand", "apply_pooled", "with_pooled", "register", "register_pooled",
           "check_supported", "missing_capabilities", "supported_proxies"]
