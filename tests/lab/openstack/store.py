"""In-memory state of the lab cloud. Only touched from the API's event loop."""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import uuid


def new_id() -> str:
    return str(uuid.uuid4())


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class AddressPool:
    """Addresses handed out one by one and returned on release."""

    def __init__(self, first: str, last: str) -> None:
        start, end = int(ipaddress.ip_address(first)), int(ipaddress.ip_address(last))
        self._free = [str(ipaddress.ip_address(i)) for i in range(start, end + 1)]
        self._used: set[str] = set()

    def allocate(self) -> str:
        if not self._free:
            raise LookupError("address pool exhausted")
        address = self._free.pop(0)
        self._used.add(address)
        return address

    def release(self, address: str) -> None:
        if address in self._used:
            self._used.remove(address)
            self._free.append(address)


@dataclasses.dataclass
class Token:
    user: dict
    project: dict
    roles: list[dict]
    expires_at: str
    issued_at: str

    @property
    def is_admin(self) -> bool:
        return any(r["name"] == "admin" for r in self.roles)


class Store:
    """Tables of plain dicts keyed by id, shaped as the APIs return them."""

    TABLES = ("domains", "projects", "users", "roles", "assignments", "images",
              "flavors", "keypairs", "servers", "migrations", "networks", "subnets",
              "routers", "ports", "floatingips", "security_groups",
              "security_group_rules")

    def __init__(self) -> None:
        for table in self.TABLES:
            setattr(self, table, {})
        self.tokens: dict[str, Token] = {}

    def find(self, table: str, name_or_id: str) -> dict | None:
        rows = getattr(self, table)
        if name_or_id in rows:
            return rows[name_or_id]
        return next((r for r in rows.values() if r.get("name") == name_or_id), None)

    def leftovers(self, admin_project_id: str) -> dict[str, int]:
        """Tenant resources still present (what Rally's cleanup should have removed)."""
        def foreign(rows, key="tenant_id"):
            return sum(1 for r in rows.values() if r.get(key) != admin_project_id)
        return {
            "servers": len(self.servers),
            "ports": foreign(self.ports),
            "floatingips": foreign(self.floatingips),
            "networks": foreign(self.networks),
            "subnets": foreign(self.subnets),
            "routers": foreign(self.routers),
            "security_groups": foreign(self.security_groups),
            "keypairs": len(self.keypairs),
            "projects": sum(1 for p in self.projects.values() if p["name"] != "admin"),
            "users": sum(1 for u in self.users.values() if u["name"] != "admin"),
        }
