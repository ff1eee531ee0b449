"""Minimal containers of arrays ("trees"): one array, a list, a tuple or a dict of arrays.

Parameters, gradients and moments share one structure; :func:`flatten` turns it into
a list of leaves plus a :class:`TreeDef` that rebuilds the same structure.
"""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["TreeDef", "flatten", "flatten_like"]


class TreeDef(NamedTuple):
    """How to rebuild a container from its leaves.

    Attributes
    ----------
    kind : str
        ``"leaf"``, ``"list"``, ``"tuple"`` or ``"dict"``.
    keys : tuple
        Dict keys in order (empty for other kinds).
    size : int
        Number of leaves.
    """

    kind: str
    keys: tuple
    size: int

    def unflatten(self, leaves: list) -> Any:
        """Rebuild the container from ``leaves`` (a list in flatten order).

        Parameters
        ----------
        leaves : list
            One entry per leaf.

        Returns
        -------
        object
            A single array, list, tuple or dict matching this definition.

        Examples
        --------
        >>> leaves, tree = flatten({"w": 1.0, "b": 2.0}, is_leaf=lambda x: isinstance(x, float))
        >>> tree.unflatten([3.0, 4.0])
        {'w': 3.0, 'b': 4.0}
        """
        if self.kind == "leaf":
            return leaves[0]
        if self.kind == "list":
            return list(leaves)
        if self.kind == "tuple":
            return tuple(leaves)
        return dict(zip(self.keys, leaves))

    def leaf_names(self, name: str) -> list[str]:
        """Names of the leaves for error messages: ``params``, ``params[0]``, ``params['w']``.

        Parameters
        ----------
        name : str
            The container's name.

        Returns
        -------
        list of str
        """
        if self.kind == "leaf":
            return [name]
        if self.kind == "dict":
            return [f"{name}[{k!r}]" for k in self.keys]
        return [f"{name}[{i}]" for i in range(self.size)]


def flatten(tree: Any, *, is_leaf, name: str = "params") -> tuple[list, TreeDef]:
    """Split ``tree`` into its leaves and a :class:`TreeDef`.

    Parameters
    ----------
    tree : array or list or tuple or dict of arrays
        The container.
    is_leaf : callable
        Predicate telling an array (leaf) from a container.
    name : str, optional
        The container's name in error messages.

    Returns
    -------
    leaves : list
    treedef : TreeDef

    Raises
    ------
    TypeError
        If ``tree`` is none of the supported containers.
    ValueError
        If ``tree`` is an empty container.

    Examples
    --------
    >>> import numpy as np
    >>> leaves, tree = flatten([np.zeros(2), np.ones(1)], is_leaf=lambda x: hasattr(x, "shape"))
    >>> tree.kind, tree.size
    ('list', 2)
    """
    if is_leaf(tree):
        return [tree], TreeDef("leaf", (), 1)
    if isinstance(tree, (list, tuple)):
        kind, keys, leaves = ("list" if isinstance(tree, list) else "tuple"), (), list(tree)
    elif isinstance(tree, dict):
        kind, keys, leaves = "dict", tuple(tree), list(tree.values())
    else:
        raise TypeError(
            f"{name} must be an array or a list, tuple or dict of arrays, got {type(tree).__name__}"
        )
    if not leaves:
        raise ValueError(f"{name} is empty: expected at least one array")
    return leaves, TreeDef(kind, keys, len(leaves))


def flatten_like(tree: Any, treedef: TreeDef, *, is_leaf, name: str, ref: str = "params") -> list:
    """Flatten ``tree`` and check it has exactly the structure ``treedef``.

    Parameters
    ----------
    tree : container
        The container to flatten (gradients, moments...).
    treedef : TreeDef
        The expected structure (from the parameters).
    is_leaf : callable
        Predicate telling an array from a container.
    name : str
        The container's name in error messages.
    ref : str, optional
        The reference container's name in error messages.

    Returns
    -------
    list
        The leaves, in the order of ``treedef``.

    Raises
    ------
    TypeError, ValueError
        If the structure differs (kind, length or dict keys).

    Examples
    --------
    >>> import numpy as np
    >>> is_arr = lambda x: hasattr(x, "shape")
    >>> _, tree = flatten([np.zeros(1)], is_leaf=is_arr)
    >>> flatten_like((np.zeros(1),), tree, is_leaf=is_arr, name="grads")
    Traceback (most recent call last):
    ...
    TypeError: grads is a tuple but params is a list: pass the same kind of container
    """
    if treedef.kind == "leaf":
        if not is_leaf(tree):
            raise TypeError(f"{name} must be a single array like {ref}, got {type(tree).__name__}")
        return [tree]
    leaves, other = flatten(tree, is_leaf=is_leaf, name=name)
    if other.kind != treedef.kind:
        raise TypeError(
            f"{name} is {_article(other.kind)} but {ref} is {_article(treedef.kind)}: "
            "pass the same kind of container"
        )
    if other.kind == "dict" and set(other.keys) != set(treedef.keys):
        got, expected = sorted(map(str, other.keys)), sorted(map(str, treedef.keys))
        raise ValueError(f"{name} has keys {got}, expected {expected} as in {ref}")
    if other.size != treedef.size:
        raise ValueError(f"{name} has {other.size} arrays, expected {treedef.size} to match {ref}")
    if other.kind == "dict":
        return [tree[k] for k in treedef.keys]
    return leaves


def _article(kind: str) -> str:
    return {"leaf": "a single array", "list": "a list", "tuple": "a tuple", "dict": "a dict"}[kind]
