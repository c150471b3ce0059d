"""Training-free proxies: one file per proxy (or small family), each registered by name.

Use :func:`get_proxy` / :func:`list_proxies`; see :mod:`jaxnas.proxies.registry` for the contract.
"""

from jaxnas.proxies.registry import Proxy, get_proxy, list_proxies, register

__all__ = ["Proxy", "get_proxy", "list_proxies", "register"]
