"""The fast path for the common row: an id, two URLs and a clothes type, nothing else set.

Most manifests are only that. Such a row is checked by the same rules as any other (the
functions of `values`), without building the full row's intermediate dicts and objects;
anything else, or any value that breaks a rule, goes the full way (`validate_row`), which
also words the problems. The two paths agree on every valid plain row (a test checks).
"""

from __future__ import annotations

from typing import Any

from runner.manifest.values import InvalidValue, check_id, check_url, normalize_clothes_type

PlainRow = tuple[int, str, str, str, str, bool]
"""(line, id, model_url, clothes_url, clothes_type, id_derived); the id is empty when derived
is True: the caller derives it from the content (`keys.derived_id`)."""

_CHECKED = frozenset(("id", "model_url", "clothes_url", "clothes_type"))
_IGNORED = frozenset(("error_code", "error_message"))  # written by `export --as-manifest`
_TYPES_KEPT = 64  # spellings of clothes_type remembered (a manifest uses a handful)


class PlainRows:
    """Checks plain rows; remembers the clothes-type spellings it has normalised."""

    def __init__(self, base_url: str | None) -> None:
        if base_url is not None and not base_url.endswith("/"):
            base_url += "/"  # as validate_row does
        self.base_url = base_url
        self._types: dict[str, str] = {}
        self._at: dict[str, int] = {}
        self._others: list[int] = []

    def check(self, line: int, raw: dict[str, Any]) -> PlainRow | None:
        """The normalised row if it is plain and valid, else None (take the full path)."""
        for name, value in raw.items():
            if name in _CHECKED or name in _IGNORED:
                continue
            # An optional field left blank is unset, as the full path reads it.
            if value is None or (type(value) is str and not value.strip()):
                continue
            return None
        return self._values(
            line,
            raw.get("id"),
            raw.get("model_url"),
            raw.get("clothes_url"),
            raw.get("clothes_type"),
        )

    def columns(self, names: list[str]) -> None:
        """Take CSV records (`check_record`) whose columns are these canonical field names."""
        self._at = {name: names.index(name) for name in _CHECKED if name in names}
        self._others = [i for i, n in enumerate(names) if n and n not in _CHECKED | _IGNORED]

    def check_record(self, line: int, record: list[str]) -> PlainRow | None:
        """`check` of a CSV record in the columns given to `columns`, without a dict."""
        for i in self._others:
            if record[i].strip():
                return None
        at = self._at.get
        i_id, i_model, i_clothes, i_kind = (
            at("id"),
            at("model_url"),
            at("clothes_url"),
            at("clothes_type"),
        )
        return self._values(
            line,
            None if i_id is None else record[i_id],
            None if i_model is None else record[i_model],
            None if i_clothes is None else record[i_clothes],
            None if i_kind is None else record[i_kind],
        )

    def _values(
        self, line: int, ident: Any, model: Any, clothes: Any, kind: Any
    ) -> PlainRow | None:
        if type(model) is not str or type(clothes) is not str or type(kind) is not str:
            return None
        model, clothes = model.strip(), clothes.strip()
        if not model or not clothes:
            return None
        try:
            model = check_url("model_url", model, self.base_url)
            clothes = check_url("clothes_url", clothes, self.base_url)
            clothes_type = self._types.get(kind)
            if clothes_type is None:
                stripped = kind.strip()
                if not stripped:
                    return None
                clothes_type = normalize_clothes_type(stripped)
                if len(self._types) < _TYPES_KEPT:
                    self._types[kind] = clothes_type
            if ident is None:
                return (line, "", model, clothes, clothes_type, True)
            if type(ident) is not str:
                return None
            ident = ident.strip()
            if not ident:
                return (line, "", model, clothes, clothes_type, True)
            return (line, check_id(ident), model, clothes, clothes_type, False)
        except InvalidValue:
            return None
