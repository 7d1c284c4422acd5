# Sourced by the ACME issuer adapters (lego, certbot, uacme), after they set
# NAME (the client), CLIENT_ARGUMENTS (what follows -- in the usage line) and
# NOISE (an extended regex of the client's output lines that never explain a
# failure). What the three share: the contract's
# options, the checks of certctl-issue's environment, the state and run
# directories, running the client, the one-line failure, the atomic result.

usage() {
	echo "usage: $NAME --server URL --email ADDR [--ca-bundle FILE] [-- $CLIENT_ARGUMENTS...]"
}

die() {
	echo "$NAME: $1" >&2
	exit "${2:-1}"
}

# acme_start "$@"; shift "$ACME_SHIFT": parses the options into SERVER, EMAIL,
# CA_BUNDLE (the client's arguments remain), checks the CSR and the result
# path, makes STATE (the client's state, kept, 0700) and RUN (this run's
# files, removed on exit).
acme_start() {
	SERVER="" EMAIL="" CA_BUNDLE="" ACME_SHIFT=0
	while [ $# -gt 0 ]; do
		case $1 in
		--server | --email | --ca-bundle)
			[ $# -ge 2 ] || { usage >&2; exit 64; }
			case $1 in
			--server) SERVER=$2 ;;
			--email) EMAIL=$2 ;;
			--ca-bundle) CA_BUNDLE=$2 ;;
			esac
			shift 2; ACME_SHIFT=$((ACME_SHIFT + 2)) ;;
		--) shift; ACME_SHIFT=$((ACME_SHIFT + 1)); break ;;
		-h | --help) usage; exit 0 ;;
		*) usage >&2; exit 64 ;;
		esac
	done
	[ -n "$SERVER" ] && [ -n "$EMAIL" ] || { usage >&2; exit 64; }
	[ -z "$CA_BUNDLE" ] || [ -r "$CA_BUNDLE" ] || die "--ca-bundle $CA_BUNDLE: cannot read it" 66
	[ -n "${CERTCTL_CSR_FILE:-}" ] && [ -n "${CERTCTL_CERT_FILE:-}" ] ||
		die "CERTCTL_CSR_FILE and CERTCTL_CERT_FILE must be set (certctl-issue sets them)" 64
	openssl req -in "$CERTCTL_CSR_FILE" -noout 2>/dev/null ||
		die "$CERTCTL_CSR_FILE: not a PEM certificate request" 65
	umask 077
	STATE=${CERTCTL_ISSUER_STATE:-/var/lib/certctl/issuers}/$NAME
	mkdir -p "$STATE" && chmod 0700 "$STATE" || die "$STATE: cannot create it" 73
	RUN=$(mktemp -d "${TMPDIR:-/tmp}/certctl-$NAME.XXXXXX") || die "cannot make a run directory" 73
	trap 'acme_cleanup' EXIT
	trap 'exit 75' HUP INT TERM
}

# The adapter may add to it (uacme stops its challenge responder).
acme_cleanup() {
	rm -rf "$RUN"
}

# acme_run COMMAND...: runs the client, its output kept in $RUN/client.log.
acme_run() {
	"$@" </dev/null >"$RUN/client.log" 2>&1
}

# acme_fail STATUS: the client's output is kept in $STATE/last-failure.log
# and the line that explains it goes to stderr: the CA's own words (the last
# "detail" of an ACME problem document the client printed) if there are
# any, else the client's last line that NOISE does not match.
acme_fail() {
	why=$(grep -E '^[[:space:]]*"detail": "' "$RUN/client.log" | tail -n 1 |
		sed -E 's/^[[:space:]]*"detail": "//; s/",?$//; s/\\"/"/g')
	[ -n "$why" ] || why=$(grep -v -E -e "$NOISE" -e '^[[:space:]]*$' "$RUN/client.log" | tail -n 1 |
		sed -E "s|^[[:space:]]+||; s|^[0-9]{4}/[0-9]{2}/[0-9]{2} [0-9:]{8} ||; s|^$NAME: ||")
	cp "$RUN/client.log" "$STATE/last-failure.log" 2>/dev/null
	die "$NAME exited $1: ${why:-no output}"
}

# acme_deliver FILE: the certificates of FILE (leaf first, as the client
# wrote them) replace $CERTCTL_CERT_FILE in one rename.
acme_deliver() {
	[ "$(grep -c -e '-----BEGIN CERTIFICATE-----' "$1" 2>/dev/null)" -ge 1 ] 2>/dev/null ||
		die "$NAME exited 0 but wrote no certificate"
	result=$(mktemp "$CERTCTL_CERT_FILE.XXXXXX") || die "$CERTCTL_CERT_FILE: cannot write beside it" 73
	sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/p' "$1" >"$result" &&
		chmod 0644 "$result" && mv -f "$result" "$CERTCTL_CERT_FILE" ||
		{ rm -f "$result"; die "$CERTCTL_CERT_FILE: cannot write it" 73; }
}
