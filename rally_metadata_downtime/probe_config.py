"""The probe's settings, validated so that nothing in them can act in a shell. Pure."""

from __future__ import annotations

import dataclasses
import re
import typing
import urllib.parse

from rally_metadata_downtime.arguments import ArgumentError

DEFAULT_URL = "http://169.254.169.254/latest/meta-data/hostname"
# Half Tempest's 0.2 s: an outage's start is known to half the interval, and the
# background launches make a short interval safe (a blackholed request never
# stalls the next). Ten requests a second per VM on the metadata path.
DEFAULT_INTERVAL = 0.1
DEFAULT_TIMEOUT = 1.0
DEFAULT_WORKDIR = "/tmp"
# Neutron serves metadata over IPv6 at this link-local address, on the guest's link.
IPV6_METADATA_HOST = "fe80::a9fe:a9fe"
FAMILIES = ("ipv4", "ipv6")
DEFAULT_FAMILIES = ("ipv4",)

# RFC 3986 unreserved and reserved characters, minus everything a POSIX shell treats
# specially even inside double quotes ($ and `) or that could end a quoted word ('),
# and minus ; & ( ) * which have no business in a metadata URL.
_URL_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!+,=%]+")
_PATH_CHARS = re.compile(r"/[A-Za-z0-9._/-]*")
_EXPECT_CHARS = re.compile(r"[A-Za-z0-9._:-]*")
# Linux interface names: at most 15 bytes; the zone of the IPv6 URL.
_INTERFACE = re.compile(r"[A-Za-z0-9._-]{1,15}")
# Every value travels in the probe's launch command, which must stay under the 9000
# bytes dropbear (CirrOS's sshd) accepts, the probe's own text included; with IPv6
# the URL's path travels twice (metadata URLs are under 60 characters).
MAX_LENGTH = {"url": 256, "expect": 255, "workdir": 100}


class ProbeConfigError(ArgumentError):
    """A probe setting is invalid; `argument` names the setting."""


@dataclasses.dataclass(frozen=True)
class ProbeConfig:
    """How the in-guest probe polls metadata.

    url: metadata URL polled (http only).
    interval: seconds between request launches, (0, 60].
    timeout: hard limit of one request in seconds, (0, 60].
    mode: "hostname" (answer's first DNS label = expected hostname) or "uuid"
        (answer contains the instance uuid); derived from the URL when None.
    expect: identity expected in the answer; "" in hostname mode = the guest's own.
    workdir: absolute directory in the guest under which the probe makes its own
        private directory.
    families: the address families polled, in order: "ipv4" (url), "ipv6" (url's
        path at fe80::a9fe:a9fe on the guest's link), or both.
    ipv6_interface: the zone of the IPv6 link-local URL; "": the probe takes the
        guest's first interface with a link-local address.
    """

    url: str = DEFAULT_URL
    interval: float = DEFAULT_INTERVAL
    timeout: float = DEFAULT_TIMEOUT
    mode: str | None = None
    expect: str = ""
    workdir: str = DEFAULT_WORKDIR
    families: tuple[str, ...] = DEFAULT_FAMILIES
    ipv6_interface: str = ""

    def __post_init__(self) -> None:
        for name, limit in MAX_LENGTH.items():
            value = getattr(self, name)
            if isinstance(value, str) and len(value) > limit:
                raise ProbeConfigError(name, f"at most {limit} characters, got "
                                       f"{len(value)}")
        _check_url(self.url)
        for name in ("interval", "timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ProbeConfigError(name, f"must be a number of seconds, "
                                       f"got {value!r}")
            if not 0 < value <= 60:
                raise ProbeConfigError(name, f"must be > 0 and <= 60 seconds, "
                                       f"got {value!r}")
        if self.mode is None:
            path = urllib.parse.urlsplit(self.url).path
            object.__setattr__(self, "mode",
                               "uuid" if path.endswith("meta_data.json") else "hostname")
        if self.mode not in ("hostname", "uuid"):
            raise ProbeConfigError("mode", f"must be 'hostname' or 'uuid', got "
                                           f"{self.mode!r}")
        if not isinstance(self.expect, str) or not _EXPECT_CHARS.fullmatch(self.expect):
            raise ProbeConfigError("expect", f"only letters, digits and . _ : - are "
                                   f"allowed, got {self.expect!r}")
        if self.mode == "uuid" and not self.expect:
            raise ProbeConfigError("expect", "the instance uuid is required in uuid mode")
        if (not isinstance(self.workdir, str) or not _PATH_CHARS.fullmatch(self.workdir)
                or "/../" in f"{self.workdir}/"):
            raise ProbeConfigError("workdir", f"must be an absolute path of letters, "
                                   f"digits and . _ - / only, got {self.workdir!r}")
        check_families(self.families)
        object.__setattr__(self, "families", tuple(self.families))
        if not isinstance(self.ipv6_interface, str) or (
                self.ipv6_interface and not _INTERFACE.fullmatch(self.ipv6_interface)):
            raise ProbeConfigError("ipv6_interface", f"an interface name: 1-15 letters, "
                                   f"digits and . _ -, got {self.ipv6_interface!r}")

    @property
    def url6(self) -> str:
        """The IPv6 URL: url's path and query at fe80::a9fe:a9fe, zoned by
        ipv6_interface when given (else the probe adds the guest's own)."""
        parts = urllib.parse.urlsplit(self.url)
        zone = f"%{self.ipv6_interface}" if self.ipv6_interface else ""
        query = f"?{parts.query}" if parts.query else ""
        return f"http://[{IPV6_METADATA_HOST}{zone}]{parts.path or '/'}{query}"

    @property
    def retry_interval(self) -> float:
        """Seconds between launches while requests fail fast: a quarter of the
        interval, at least 0.05 s, so the recovery is timed four times as closely.
        Only while metadata is already failing, and blackholed requests do not count."""
        return min(self.interval, max(self.interval / 4, 0.05))


def check_families(families: object) -> None:
    """A non-empty list of distinct families among FAMILIES."""
    if (isinstance(families, str) or not isinstance(families, (list, tuple))
            or not families or any(f not in FAMILIES for f in families)
            or len(set(families)) != len(families)):
        raise ProbeConfigError("families", f"a list of distinct families among "
                               f"{', '.join(FAMILIES)} (at least one), got {families!r}")


def _check_url(url: object) -> None:
    if not isinstance(url, str) or not _URL_CHARS.fullmatch(url):
        raise ProbeConfigError("url", f"only URL characters are allowed (no spaces, "
                               f"quotes, $, `, ;, &, parentheses), got {url!r}")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ProbeConfigError("url", f"must be http://HOST/..., got {url!r}")


# The scenario argument behind each setting (expect and mode follow from the URL).
_ARGUMENT_OF_FIELD = {"url": "metadata_url", "interval": "probe_interval",
                      "timeout": "probe_timeout", "workdir": "probe_workdir",
                      "expect": "metadata_url", "mode": "metadata_url",
                      "families": "metadata_families",
                      "ipv6_interface": "metadata_ipv6_interface"}
# uuid mode needs an instance id, which exists only after boot; any well-formed one
# validates the rest of the settings.
_PLACEHOLDER_UUID = "00000000-0000-0000-0000-000000000000"


def from_arguments(metadata_url: str, probe_interval: float, probe_timeout: float,
                   probe_workdir: str, server_id: str | None = None,
                   metadata_families: typing.Sequence[str] = DEFAULT_FAMILIES,
                   metadata_ipv6_interface: str | None = None) -> ProbeConfig:
    """The probe's settings from the scenario's arguments.

    A meta_data.json URL is checked for the instance uuid (server_id; a placeholder
    before boot), any other for the guest's own hostname. Raises ProbeConfigError
    naming the scenario argument.
    """
    try:
        config = ProbeConfig(url=metadata_url, interval=probe_interval,
                             timeout=probe_timeout, workdir=probe_workdir,
                             expect=_PLACEHOLDER_UUID,
                             families=metadata_families,
                             ipv6_interface=metadata_ipv6_interface or "")
        expect = (server_id or _PLACEHOLDER_UUID) if config.mode == "uuid" else ""
        return dataclasses.replace(config, expect=expect)
    except ProbeConfigError as e:
        raise ProbeConfigError(_ARGUMENT_OF_FIELD.get(e.argument, e.argument),
                               e.problem) from e
