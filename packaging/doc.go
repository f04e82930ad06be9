// Package packaging tests keepwatch's release artifacts as scripts/packages.sh
// (make packages) builds them. The Debian package is installed, upgraded,
// removed and purged in a scratch root (dpkg --root, never on the machine
// itself); the Windows agent's MSI is read table by table with msiinfo and
// its Authenticode signature verified against a throwaway certificate;
// every artifact is built twice and compared byte for byte; checksums and
// SBOMs are checked against the binaries they describe.
//
// The packaging files themselves are next to this file: deb/ (control,
// maintainer scripts, systemd units, configuration) and msi/ (the WiX
// source and the Windows Installer tables wixl cannot express).
package packaging
