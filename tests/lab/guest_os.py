"""What a lab guest looks like from the inside: a CirrOS-like system made of the host's
binaries seen through a private mount namespace.

- PATH and login shell: a lab bin dir of busybox applets plus curl (or without curl);
  root's shell is busybox sh, its home a per-guest directory.
- /tmp and /run are fresh tmpfs mounts at each boot, so a reboot empties them.
- sshd is the guest's init, configured from per-guest files under the lab directory.

Everything here only writes files and builds command lines.
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

BUSYBOX = "/usr/bin/busybox"
CURL = "/usr/bin/curl"
SSHD = "/usr/sbin/sshd"

# Runs under the host's /bin/sh as the guest's PID 1 (then execs sshd).
# Masking /tmp and /run hides the lab directory if it lives below them, so a tmpfs is
# first mounted on $lab/.mnt, the lab directory bound back into it at its own path,
# and the result moved over the masked directory.
_INIT_SCRIPT = r"""
set -e
hostname "$1"
mount -n --bind "$2" /etc/passwd
mount -n --bind "$3" /etc/shadow
lab=$4
for dir in /tmp /run; do
    case $dir in /run) mode=0755 ;; *) mode=1777 ;; esac
    mount -n -t tmpfs -o "mode=$mode,size=64m" tmpfs "$lab/.mnt"
    case "$lab/" in
        "$dir"/*) rel=${lab#"$dir"/}
                  mkdir -p "$lab/.mnt/$rel"
                  mount -n --bind "$lab" "$lab/.mnt/$rel" ;;
    esac
    mount -n --move "$lab/.mnt" "$dir"
done
mkdir -m 0755 /run/sshd
exec "$6" -D -e -f "$5"
"""


@dataclasses.dataclass(frozen=True)
class GuestFiles:
    """Per-guest files (under <lab>/guests/<server_id>/)."""

    root: Path
    sshd_config: Path
    authorized_keys: Path
    passwd: Path
    shadow: Path
    home: Path
    console_log: Path


class GuestImage:
    """The lab-wide part of every guest: bin dirs and the SSH host key."""

    def __init__(self, lab_dir: Path) -> None:
        self.lab_dir = Path(lab_dir).resolve()
        self.image_dir = self.lab_dir / "image"
        self.host_key = self.image_dir / "ssh_host_ed25519_key"

    def bin_dir(self, no_curl: bool = False) -> Path:
        """The guest PATH: busybox applets, plus curl unless no_curl."""
        return self.image_dir / ("bin-nocurl" if no_curl else "bin")

    def prepare(self) -> None:
        """Create bin dirs, the host key and the mount point used by the guest init."""
        (self.lab_dir / ".mnt").mkdir(parents=True, exist_ok=True)
        applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True,
                                 check=True).stdout.split()
        for no_curl in (False, True):
            bin_dir = self.bin_dir(no_curl)
            bin_dir.mkdir(parents=True, exist_ok=True)
            links = {applet: BUSYBOX for applet in applets}
            if not no_curl:
                links["curl"] = CURL
            for name, target in links.items():
                link = bin_dir / name
                if not link.is_symlink():
                    link.symlink_to(target)
        if not self.host_key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "rmd-lab",
                            "-f", str(self.host_key)], check=True, capture_output=True)

    def write_guest(self, server_id: str, public_key: str | None,
                    no_curl: bool = False) -> GuestFiles:
        """Write one guest's sshd_config, authorized_keys, passwd and shadow."""
        root = self.lab_dir / "guests" / server_id
        files = GuestFiles(root=root, sshd_config=root / "sshd_config",
                           authorized_keys=root / "authorized_keys", passwd=root / "passwd",
                           shadow=root / "shadow", home=root / "home",
                           console_log=root / "console.log")
        files.home.mkdir(parents=True, exist_ok=True)
        files.authorized_keys.write_text((public_key.strip() + "\n") if public_key else "")
        bin_dir = self.bin_dir(no_curl)
        files.passwd.write_text(_replace_root(
            Path("/etc/passwd").read_text(), f"root:x:0:0:root:{files.home}:{bin_dir}/sh"))
        # A "!" (locked) root password would make sshd refuse even key logins.
        files.shadow.write_text(_replace_root(
            Path("/etc/shadow").read_text(), "root:*:19000:0:99999:7:::"))
        files.shadow.chmod(0o600)
        files.sshd_config.write_text(sshd_config(self.host_key, files.authorized_keys,
                                                 bin_dir))
        return files

    def init_argv(self, netns: str, hostname: str, files: GuestFiles) -> list[str]:
        """The guest init: sshd as PID 1 of new UTS/mount/PID namespaces in `netns`."""
        return ["ip", "netns", "exec", netns,
                "unshare", "--uts", "--mount", "--pid", "--fork", "--kill-child",
                "--mount-proc",
                "sh", "-c", _INIT_SCRIPT, "guest-init", hostname, str(files.passwd),
                str(files.shadow), str(self.lab_dir), str(files.sshd_config), SSHD]


def _replace_root(text: str, root_line: str) -> str:
    lines = [line for line in text.splitlines() if not line.startswith("root:")]
    return "\n".join([root_line] + lines) + "\n"


def sshd_config(host_key: Path, authorized_keys: Path, bin_dir: Path) -> str:
    """A guest's sshd_config: root logs in with the boot key pair only."""
    settings = [
        ("ListenAddress", "0.0.0.0:22"),
        ("HostKey", str(host_key)),
        ("PermitRootLogin", "prohibit-password"),
        ("AuthorizedKeysFile", str(authorized_keys)),
        ("StrictModes", "no"),
        ("UsePAM", "no"),
        ("PasswordAuthentication", "no"),
        ("KbdInteractiveAuthentication", "no"),
        ("PidFile", "none"),
        ("MaxStartups", "100:30:200"),
        ("MaxSessions", "50"),
        ("LogLevel", "ERROR"),
        ("UseDNS", "no"),
        ("PrintMotd", "no"),
        ("PrintLastLog", "no"),
        ("Subsystem", "sftp internal-sftp"),
        ("SetEnv", f"\"PATH={bin_dir}\""),
    ]
    return "".join(f"{key} {value}\n" for key, value in settings)
