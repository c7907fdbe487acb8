# SPDX-License-Identifier: MIT
"""A case-insensitive, multi-valued, ordered header collection."""

__all__ = ['Headers']

_MISSING = object()


class Headers:
    """Header fields in arrival order; names compare case-insensitively.

    Multi-dict semantics (as aiohttp's CIMultiDict):

    - ``h[name]`` is the first value (KeyError if absent), ``h.get(name)``
      the same or a default, ``h.getall(name)`` every value in order;
    - ``len(h)``, ``iter(h)``, ``keys()``, ``values()`` and ``items()``
      count and list every field, repeated names included;
    - ``name in h`` is case-insensitive.

    Values are str (the header bytes decoded as latin-1, so nothing is lost).
    A Headers is a snapshot: it does not change when the request does.
    """

    __slots__ = ('_items', '_index')

    def __init__(self, items=()):
        if isinstance(items, Headers):
            items = items._items
        elif hasattr(items, 'items'):
            items = items.items()
        self._items = [(str(k), str(v)) for k, v in items]
        index = {}
        for i, (k, _) in enumerate(self._items):
            index.setdefault(k.lower(), []).append(i)
        self._index = index

    def __getitem__(self, name):
        idx = self._index.get(name.lower())
        if not idx:
            raise KeyError(name)
        return self._items[idx[0]][1]

    def get(self, name, default=None):
        idx = self._index.get(name.lower())
        return self._items[idx[0]][1] if idx else default

    def getall(self, name, default=_MISSING):
        """Every value of `name`, in order ([] or `default` if absent)."""
        idx = self._index.get(name.lower())
        if not idx:
            return [] if default is _MISSING else default
        return [self._items[i][1] for i in idx]

    get_all = getall

    def getlist(self, name):
        """Every value of `name` split at commas, for list-valued headers
        such as Allow (repeated headers merged, as RFC 7230 3.2.2 says)."""
        out = []
        for v in self.getall(name):
            out += [p.strip() for p in v.split(',') if p.strip()]
        return out

    def __contains__(self, name):
        return isinstance(name, str) and name.lower() in self._index

    def __iter__(self):
        return (k for k, _ in self._items)

    def __len__(self):
        return len(self._items)

    def keys(self):
        return [k for k, _ in self._items]

    def values(self):
        return [v for _, v in self._items]

    def items(self):
        return list(self._items)

    def to_dict(self):
        """pyicap's shape: {lower-case name: [values...]}."""
        out = {}
        for k, v in self._items:
            out.setdefault(k.lower(), []).append(v)
        return out

    def copy(self):
        return Headers(self._items)

    def __eq__(self, other):
        if isinstance(other, Headers):
            return ([(k.lower(), v) for k, v in self._items]
                    == [(k.lower(), v) for k, v in other._items])
        return NotImplemented

    def __repr__(self):
        return 'Headers(%r)' % (self._items,)
