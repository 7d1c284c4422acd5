#!/usr/bin/env bats
# certctl-import: inventory upserts and certificate versions checked with OpenSSL.
load helpers
load lib/pki

setup() {
	fresh_database
	PKI="$BATS_TEST_TMPDIR/pki"
	make_pki "$PKI"
	make_leaf "$PKI" shop shop.example
	make_sealing_key
	sql "INSERT INTO managed_certificates (id) VALUES ('mc-shop')"
}

# Fails when text contains a fixed substring.
refute_contains() {
	case "$1" in
	*"$2"*) echo "did not expect to find '$2' in: $1"; return 1 ;;
	esac
}

versions() {
	sql "SELECT count(*) FROM certificate_versions"
}

# The base64 body of a PEM file on one line: what a leaked key would look like.
pem_body() {
	grep -v -- '-----' "$1" | tr -d '\n'
}

# A leaf that expired in 2020, signed by the test intermediate with `openssl ca`,
# which (unlike `openssl x509 -days`) takes explicit start and end dates.
make_expired_leaf() {
	local dir=$1 name=$2 cn=$3 ca="$1/ca"
	mkdir -p "$ca"
	: > "$ca/index.txt"
	echo 1000 > "$ca/serial"
	cat > "$ca/ca.cnf" <<-CONF
	[ ca ]
	default_ca = test_ca
	[ test_ca ]
	database = $ca/index.txt
	serial = $ca/serial
	new_certs_dir = $ca
	default_md = sha256
	policy = any_name
	unique_subject = no
	[ any_name ]
	commonName = supplied
	CONF
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$dir/$name.key" -subj "/CN=$cn" -out "$dir/$name.csr" 2>/dev/null
	openssl ca -batch -config "$ca/ca.cnf" -cert "$dir/chain.pem" -keyfile "$dir/intermediate.key" \
		-startdate 20200101000000Z -enddate 20200201000000Z -notext \
		-in "$dir/$name.csr" -out "$dir/$name.pem" 2>/dev/null
}

# --- inventory -----------------------------------------------------------

@test "import inventory: agents, targets and certificates are inserted, one line each" {
	run --separate-stderr certctl-import <<-'JSON'
	{"kind":"agent","id":"agent-web01","name":"web01"}
	{"kind":"target","id":"target-web01-nginx","name":"web01 nginx","type":"nginx","agent_id":"agent-web01","config":{"cert_path":"/etc/nginx/shop.pem"}}
	{"kind":"certificate","id":"mc-blog","name":"blog","common_name":"blog.example","targets":["target-web01-nginx"]}
	JSON
	expect_status 0
	expect_equal "" "$stderr" "stderr"
	expect_equal "agent agent-web01 inserted
target target-web01-nginx inserted
certificate mc-blog inserted" "$(jq -r '"\(.kind) \(.id) \(.action)"' <<<"$output")"
	expect_equal "web01" "$(sql "SELECT name FROM agents WHERE id = 'agent-web01'")"
	expect_equal "web01 nginx|nginx|agent-web01|/etc/nginx/shop.pem" \
		"$(sql "SELECT name, type, agent_id, config->>'cert_path' FROM deployment_targets WHERE id = 'target-web01-nginx'")"
	expect_equal "blog|blog.example" "$(sql "SELECT name, common_name FROM managed_certificates WHERE id = 'mc-blog'")"
	expect_equal "target-web01-nginx" "$(sql "SELECT target_id FROM certificate_targets WHERE certificate_id = 'mc-blog'")"
}

@test "import inventory: an existing id is updated and reported as updated" {
	printf '%s\n' '{"kind":"agent","id":"agent-web01","name":"web01"}' | certctl-import >/dev/null
	run --separate-stderr certctl-import <<<'{"kind":"agent","id":"agent-web01","name":"web01-renamed"}'
	expect_status 0
	expect_equal "updated" "$(jq -r .action <<<"$output")"
	expect_equal "web01-renamed" "$(sql "SELECT name FROM agents WHERE id = 'agent-web01'")"
	expect_equal 1 "$(sql "SELECT count(*) FROM agents WHERE id = 'agent-web01'")"
}

@test "import inventory: an update never un-retires an agent or a target" {
	sql "INSERT INTO agents (id, retired_at, retired_reason) VALUES ('agent-old', '2026-01-01Z', 'gone');
	     INSERT INTO agents (id) VALUES ('agent-web01');
	     INSERT INTO deployment_targets (id, type, agent_id, retired_at) VALUES ('target-old', 'nginx', 'agent-web01', '2026-01-02Z')"
	run --separate-stderr certctl-import <<-'JSON'
	{"kind":"agent","id":"agent-old","name":"renamed"}
	{"kind":"target","id":"target-old","name":"renamed too","type":"file","agent_id":"agent-web01"}
	JSON
	expect_status 0
	expect_equal "renamed|2026-01-01T00:00:00Z|gone" "$(sql "SELECT name, certctl_rfc3339(retired_at), retired_reason FROM agents WHERE id = 'agent-old'")"
	expect_equal "renamed too|file|2026-01-02T00:00:00Z" "$(sql "SELECT name, type, certctl_rfc3339(retired_at) FROM deployment_targets WHERE id = 'target-old'")"
}

@test "import inventory: a bad line in the middle is reported with its number; the others are stored" {
	run --separate-stderr certctl-import <<-'JSON'
	{"kind":"agent","id":"agent-a"}
	{"kind":"agent","id":
	{"kind":"agent","id":"agent-b"}
	JSON
	expect_status 65
	expect_equal "agent-a agent-b" "$(jq -r .id <<<"$output" | xargs)"
	expect_contains "$stderr" "certctl-import: line 2: "
	expect_equal 2 "$(sql "SELECT count(*) FROM agents WHERE id IN ('agent-a', 'agent-b')")"
}

@test "import inventory: unknown kind and missing id are refused per line with 65" {
	run --separate-stderr certctl-import <<-'JSON'
	{"kind":"printer","id":"p-1"}
	{"kind":"agent","name":"no id"}
	{"kind":"agent","id":"agent-ok"}
	{"kind":"target","id":"target-x","agent_id":"agent-ok"}
	JSON
	expect_status 65
	expect_contains "$stderr" "certctl-import: line 1: unknown kind"
	expect_contains "$stderr" "certctl-import: line 2: missing \"id\""
	expect_contains "$stderr" "certctl-import: line 4: target target-x: missing \"type\""
	expect_equal "agent-ok" "$(jq -r .id <<<"$output")"
	expect_equal 0 "$(sql "SELECT count(*) FROM deployment_targets")"
}

@test "import inventory: a target of an unknown or retired agent is refused for that line" {
	sql "INSERT INTO agents (id, retired_at) VALUES ('agent-old', now())"
	run --separate-stderr certctl-import <<-'JSON'
	{"kind":"target","id":"target-a","type":"nginx","agent_id":"agent-nope"}
	{"kind":"target","id":"target-b","type":"nginx","agent_id":"agent-old"}
	{"kind":"agent","id":"agent-new"}
	JSON
	expect_status 66
	expect_contains "$stderr" "line 1: target target-a: agent agent-nope: no such agent"
	expect_contains "$stderr" "line 2: target target-b: agent agent-old is retired"
	expect_equal 0 "$(sql "SELECT count(*) FROM deployment_targets")"
	expect_equal "agent-new" "$(jq -r .id <<<"$output")"
}

@test "import inventory: a certificate's targets replace its mappings" {
	sql "INSERT INTO agents (id) VALUES ('agent-web01');
	     INSERT INTO deployment_targets (id, type, agent_id) VALUES ('target-a', 'nginx', 'agent-web01'),
	       ('target-b', 'nginx', 'agent-web01'), ('target-c', 'nginx', 'agent-web01')"
	certctl-import <<<'{"kind":"certificate","id":"mc-blog","targets":["target-a","target-b"]}' >/dev/null
	run --separate-stderr certctl-import <<<'{"kind":"certificate","id":"mc-blog","targets":["target-b","target-c"]}'
	expect_status 0
	expect_equal "updated" "$(jq -r .action <<<"$output")"
	expect_equal "target-b,target-c" "$(sql "SELECT string_agg(target_id, ',' ORDER BY target_id) FROM certificate_targets WHERE certificate_id = 'mc-blog'")"
	certctl-import <<<'{"kind":"certificate","id":"mc-blog","name":"no targets key"}' >/dev/null
	expect_equal 2 "$(sql "SELECT count(*) FROM certificate_targets")" "mappings kept when targets is absent"
	certctl-import <<<'{"kind":"certificate","id":"mc-blog","targets":[]}' >/dev/null
	expect_equal 0 "$(sql "SELECT count(*) FROM certificate_targets")" "mappings after an empty list"
}

@test "import inventory: an unknown or retired target in targets refuses the line and changes nothing" {
	sql "INSERT INTO agents (id) VALUES ('agent-web01');
	     INSERT INTO deployment_targets (id, type, agent_id) VALUES ('target-a', 'nginx', 'agent-web01');
	     INSERT INTO deployment_targets (id, type, agent_id, retired_at) VALUES ('target-old', 'nginx', 'agent-web01', now())"
	certctl-import <<<'{"kind":"certificate","id":"mc-blog","name":"blog","targets":["target-a"]}' >/dev/null
	run --separate-stderr certctl-import <<-'JSON'
	{"kind":"certificate","id":"mc-blog","name":"changed","targets":["target-nope"]}
	{"kind":"certificate","id":"mc-blog","name":"changed","targets":["target-old"]}
	JSON
	expect_status 66
	expect_contains "$stderr" "line 1: certificate mc-blog: target target-nope: no such target"
	expect_contains "$stderr" "line 2: certificate mc-blog: target target-old is retired"
	expect_equal "blog|target-a" "$(sql "SELECT c.name, ct.target_id FROM managed_certificates c JOIN certificate_targets ct ON ct.certificate_id = c.id")"
}

@test "import inventory: absent optional fields keep stored values; unknown keys are ignored" {
	certctl-import <<-'JSON' >/dev/null
	{"kind":"agent","id":"agent-web01","name":"web01"}
	{"kind":"target","id":"target-a","name":"a","type":"nginx","agent_id":"agent-web01","config":{"cert_path":"/x"}}
	JSON
	run --separate-stderr certctl-import <<-'JSON'
	{"kind":"agent","id":"agent-web01","colour":"blue"}
	{"kind":"target","id":"target-a","type":"apache","agent_id":"agent-web01"}
	{"kind":"agent","id":"agent-new"}
	JSON
	expect_status 0
	expect_equal "web01" "$(sql "SELECT name FROM agents WHERE id = 'agent-web01'")"
	expect_equal 'a|apache|{"cert_path": "/x"}' "$(sql "SELECT name, type, config FROM deployment_targets")"
	expect_equal 'agent-new|{}' "$(sql "SELECT a.name, '{}' FROM agents a WHERE id = 'agent-new'")"
	expect_equal '{}' "$(sql "INSERT INTO deployment_targets (id, type, agent_id) VALUES ('t', 'file', 'agent-new') RETURNING config")"
}

@test "import inventory: a field of the wrong type refuses the line" {
	run --separate-stderr certctl-import <<-'JSON'
	{"kind":"agent","id":"agent-a","name":5}
	{"kind":"agent","id":"agent-b"}
	{"kind":"target","id":"target-a","type":"nginx","agent_id":"agent-b","config":"nope"}
	{"kind":"certificate","id":"mc-a","targets":"target-a"}
	JSON
	expect_status 65
	expect_contains "$stderr" "line 1: agent agent-a: \"name\" must be a string"
	expect_contains "$stderr" "line 3: target target-a: \"config\" must be a JSON object"
	expect_contains "$stderr" "line 4: certificate mc-a: \"targets\" must be an array"
	expect_equal "agent-b" "$(jq -r .id <<<"$output")"
}

@test "import inventory: SIGTERM ends the run between lines with 75, the finished lines stored" {
	mkfifo "$BATS_TEST_TMPDIR/in"
	certctl-import < "$BATS_TEST_TMPDIR/in" > "$BATS_TEST_TMPDIR/out" 2> "$BATS_TEST_TMPDIR/err" &
	pid=$!
	exec 8> "$BATS_TEST_TMPDIR/in"
	echo '{"kind":"agent","id":"agent-a"}' >&8
	for _ in $(seq 1 100); do [ -s "$BATS_TEST_TMPDIR/out" ] && break; sleep 0.05; done
	kill -TERM "$pid"
	status=0
	wait "$pid" || status=$?
	exec 8>&-
	expect_status 75
	expect_equal "agent-a" "$(jq -r .id "$BATS_TEST_TMPDIR/out")"
	expect_equal 1 "$(sql "SELECT count(*) FROM agents WHERE id = 'agent-a'")"
	expect_contains "$(cat "$BATS_TEST_TMPDIR/err")" "certctl-import: "
}

@test "import inventory: an unwritable standard output exits 73" {
	status=0
	certctl-import <<<'{"kind":"agent","id":"agent-b"}' > /dev/full 2> "$BATS_TEST_TMPDIR/err" || status=$?
	expect_status 73
	expect_contains "$(cat "$BATS_TEST_TMPDIR/err")" "standard output"
}

# --- certificate versions -------------------------------------------------

@test "import version: stores the leaf's facts and prints the version line" {
	run --separate-stderr certctl-import --certificate mc-shop --cert "$PKI/shop.pem" \
		--chain "$PKI/chain.pem" --key "$PKI/shop.key"
	expect_status 0
	expect_equal "" "$stderr" "stderr"
	expect_equal 1 "$(printf '%s\n' "$output" | wc -l)" "output lines"
	expect_equal "mc-shop" "$(jq -r .certificate_id <<<"$output")"
	expect_equal "$(fingerprint "$PKI/shop.pem")" "$(jq -r .fingerprint_sha256 <<<"$output")" "fingerprint"
	jq -e '.not_after | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$")' <<<"$output"
	version=$(jq -r .version_id <<<"$output")
	expect_equal "$version" "$(sql "SELECT id FROM certificate_versions WHERE certificate_id = 'mc-shop'")"
	expect_equal "$(fingerprint "$PKI/shop.pem")" "$(sql "SELECT fingerprint_sha256 FROM certificate_versions")"
	serial=$(openssl x509 -in "$PKI/shop.pem" -noout -serial | cut -d= -f2 | tr 'A-F' 'a-f')
	expect_equal "$serial" "$(sql "SELECT serial_number FROM certificate_versions")" "serial"
	expect_equal "CN=shop.example" "$(sql "SELECT subject FROM certificate_versions")" "subject"
	end=$(date -u -d "$(openssl x509 -in "$PKI/shop.pem" -noout -enddate | cut -d= -f2)" +%Y-%m-%dT%H:%M:%SZ)
	expect_equal "$end" "$(jq -r .not_after <<<"$output")" "not_after"
	expect_equal "$end" "$(sql "SELECT certctl_rfc3339(not_after) FROM certificate_versions")"
	start=$(date -u -d "$(openssl x509 -in "$PKI/shop.pem" -noout -startdate | cut -d= -f2)" +%Y-%m-%dT%H:%M:%SZ)
	expect_equal "$start" "$(sql "SELECT certctl_rfc3339(not_before) FROM certificate_versions")"
	expect_equal "EC-P-256" "$(sql "SELECT key_algorithm FROM certificate_versions")"
	expect_equal "shop.example" "$(sql "SELECT common_name FROM managed_certificates WHERE id = 'mc-shop'")"
	expect_equal "$(openssl x509 -in "$PKI/shop.pem")" "$(sql "SELECT cert_pem FROM certificate_versions")" "cert_pem"
	expect_equal "$(openssl x509 -in "$PKI/chain.pem")" "$(sql "SELECT chain_pem FROM certificate_versions")" "chain_pem"
}

@test "import version: the private key is stored sealed, never as plaintext" {
	run --separate-stderr certctl-import --certificate mc-shop --cert "$PKI/shop.pem" --key "$PKI/shop.key"
	expect_status 0
	expect_equal 0 "$(sql "SELECT position(convert_to('PRIVATE KEY', 'UTF8') IN key_sealed) FROM certificate_versions")"
	body=$(pem_body "$PKI/shop.key")
	sealed=$(sql "SELECT encode(key_sealed, 'base64') FROM certificate_versions" | tr -d '\n')
	refute_contains "$sealed" "$body"
	expect_equal 0 "$(sql "SELECT position(decode('$body', 'base64') IN key_sealed) FROM certificate_versions")"
	# version byte 1, then a 12-byte nonce, the ciphertext and a 16-byte tag
	expect_equal 1 "$(sql "SELECT get_byte(key_sealed, 0) FROM certificate_versions")"
	expect_equal t "$(sql "SELECT length(key_sealed) > 1 + 12 + 16 + 100 FROM certificate_versions")"
	expect_equal 0 "$(sql "SELECT count(*) FROM certificate_versions WHERE cert_pem LIKE '%PRIVATE%' OR chain_pem LIKE '%PRIVATE%'")"
}

@test "import version: the sealed key decrypts under CERTCTL_KEY_FILE to the leaf's key" {
	run --separate-stderr certctl-import --certificate mc-shop --cert "$PKI/shop.pem" --key "$PKI/shop.key"
	expect_status 0
	# AES-256-GCM is CTR mode from counter 2 for a 96-bit nonce: enough to read
	# the plaintext with the openssl CLI (the tag is checked by sealed_open()).
	nonce=$(sql "SELECT encode(substring(key_sealed FROM 2 FOR 12), 'hex') FROM certificate_versions")
	sql "SELECT encode(substring(key_sealed FROM 14 FOR length(key_sealed) - 29), 'base64') FROM certificate_versions" |
		base64 -d | openssl enc -d -aes-256-ctr -K "$(cat "$CERTCTL_KEY_FILE")" -iv "${nonce}00000002" \
		> "$BATS_TEST_TMPDIR/opened.pem"
	expect_contains "$(head -n 1 "$BATS_TEST_TMPDIR/opened.pem")" "-----BEGIN PRIVATE KEY-----"
	expect_equal "$(openssl x509 -in "$PKI/shop.pem" -noout -pubkey)" \
		"$(openssl pkey -in "$BATS_TEST_TMPDIR/opened.pem" -pubout)" "public key of the opened key"
}

@test "import version: an encrypted key is refused with 65, never prompted for" {
	openssl pkey -in "$PKI/shop.key" -aes256 -passout pass:secret -out "$BATS_TEST_TMPDIR/encrypted.key"
	run --separate-stderr certctl-import --certificate mc-shop --cert "$PKI/shop.pem" \
		--key "$BATS_TEST_TMPDIR/encrypted.key" < /dev/null
	expect_status 65
	expect_one_line_error certctl-import
	expect_equal 0 "$(versions)" "versions"
}

@test "import version: a missing key file exits 66" {
	run --separate-stderr certctl-import --certificate mc-shop --cert "$PKI/shop.pem" --key "$PKI/nope.key"
	expect_status 66
	expect_one_line_error certctl-import
	expect_contains "$stderr" "nope.key"
	expect_equal 0 "$(versions)" "versions"
}

@test "import version: a sealing key file that cannot be read is named once, on one clean line" {
	CERTCTL_KEY_FILE=/nonexistent/dir/sealing.key run --separate-stderr \
		certctl-import --certificate mc-shop --cert "$PKI/shop.pem" --key "$PKI/shop.key" < /dev/null
	expect_status 78
	expect_one_line_error certctl-import
	expect_equal "certctl-import: key file /nonexistent/dir/sealing.key: No such file or directory" "$stderr"
	expect_equal 0 "$(versions)" "versions"
}

@test "import version: the key never reaches stdout, stderr or the audit trail" {
	body=$(pem_body "$PKI/shop.key")
	run --separate-stderr certctl-import -v --certificate mc-shop --cert "$PKI/shop.pem" --key "$PKI/shop.key"
	expect_status 0
	refute_contains "$output$stderr" "$body"
	refute_contains "$output$stderr" "PRIVATE KEY"
	make_leaf "$PKI" other other.example
	run --separate-stderr certctl-import -v --certificate mc-shop --cert "$PKI/shop.pem" --key "$PKI/other.key"
	expect_status 65
	other=$(pem_body "$PKI/other.key")
	refute_contains "$output$stderr" "$other"
	refute_contains "$output$stderr" "PRIVATE KEY"
	refute_contains "$(sql "SELECT details::text FROM audit_events")" "PRIVATE"
	expect_equal '["fingerprint_sha256", "not_after", "version_id"]' \
		"$(sql "SELECT jsonb_agg(k ORDER BY k) FROM audit_events, jsonb_object_keys(details) k WHERE action = 'certificate_version_imported'")"
}

@test "import version: audit event certificate_version_imported names the version" {
	run --separate-stderr certctl-import --certificate mc-shop --cert "$PKI/shop.pem" --key "$PKI/shop.key"
	expect_status 0
	version=$(jq -r .version_id <<<"$output")
	expect_equal "certificate|mc-shop|$version|$(fingerprint "$PKI/shop.pem")" \
		"$(sql "SELECT resource_type || '|' || resource_id || '|' || (details->>'version_id') || '|' || (details->>'fingerprint_sha256') FROM audit_events WHERE action = 'certificate_version_imported'")"
}

@test "import version: a fullchain cert file is split into leaf and chain" {
	cat "$PKI/shop.pem" "$PKI/chain.pem" > "$BATS_TEST_TMPDIR/fullchain.pem"
	run --separate-stderr certctl-import --certificate mc-shop --cert "$BATS_TEST_TMPDIR/fullchain.pem" --key "$PKI/shop.key"
	expect_status 0
	expect_equal "$(fingerprint "$PKI/shop.pem")" "$(jq -r .fingerprint_sha256 <<<"$output")"
	expect_equal "$(openssl x509 -in "$PKI/shop.pem")" "$(sql "SELECT cert_pem FROM certificate_versions")" "cert_pem"
	expect_equal "$(openssl x509 -in "$PKI/chain.pem")" "$(sql "SELECT chain_pem FROM certificate_versions")" "chain_pem"
}

@test "import version: a fullchain plus the same chain file stores each intermediate once" {
	cat "$PKI/shop.pem" "$PKI/chain.pem" > "$BATS_TEST_TMPDIR/fullchain.pem"
	run --separate-stderr certctl-import --certificate mc-shop --cert "$BATS_TEST_TMPDIR/fullchain.pem" \
		--chain "$PKI/chain.pem" --key "$PKI/shop.key"
	expect_status 0
	expect_equal 1 "$(sql "SELECT (length(chain_pem) - length(replace(chain_pem, 'BEGIN CERTIFICATE', ''))) / length('BEGIN CERTIFICATE') FROM certificate_versions")"
}

@test "import version: the key of another certificate is refused with 65 and nothing is stored" {
	make_leaf "$PKI" other other.example
	run --separate-stderr certctl-import --certificate mc-shop --cert "$PKI/shop.pem" --key "$PKI/other.key"
	expect_status 65
	expect_one_line_error certctl-import
	expect_contains "$stderr" "does not match"
	expect_equal "" "$output" "stdout"
	expect_equal 0 "$(versions)" "versions"
	expect_equal 0 "$(sql "SELECT count(*) FROM audit_events")" "audit events"
	expect_equal "" "$(sql "SELECT common_name FROM managed_certificates")" "common_name"
}

@test "import version: a chain in the wrong order is refused with 65" {
	cat "$PKI/root.pem" "$PKI/chain.pem" > "$BATS_TEST_TMPDIR/reversed.pem"
	run --separate-stderr certctl-import --certificate mc-shop --cert "$PKI/shop.pem" \
		--chain "$BATS_TEST_TMPDIR/reversed.pem" --key "$PKI/shop.key"
	expect_status 65
	expect_one_line_error certctl-import
	expect_contains "$stderr" "not issued by"
	expect_equal 0 "$(versions)" "versions"
}

@test "import version: a chain that does not issue the leaf is refused with 65" {
	make_pki "$BATS_TEST_TMPDIR/other-pki"
	run --separate-stderr certctl-import --certificate mc-shop --cert "$PKI/shop.pem" \
		--chain "$BATS_TEST_TMPDIR/other-pki/chain.pem" --key "$PKI/shop.key"
	expect_status 65
	expect_contains "$stderr" "not issued by"
	expect_equal 0 "$(versions)" "versions"
}

@test "import version: an expired certificate is refused with 65" {
	make_expired_leaf "$PKI" old old.example
	openssl x509 -in "$PKI/old.pem" -noout -checkend 0 && { echo "test certificate is not expired"; return 1; }
	run --separate-stderr certctl-import --certificate mc-shop --cert "$PKI/old.pem" --chain "$PKI/chain.pem" --key "$PKI/old.key"
	expect_status 65
	expect_one_line_error certctl-import
	expect_contains "$stderr" "expired at 2020-02-01T00:00:00Z"
	expect_equal 0 "$(versions)" "versions"
}

@test "import version: a file that is not PEM is refused with 65" {
	echo "not a certificate" > "$BATS_TEST_TMPDIR/junk.pem"
	run --separate-stderr certctl-import --certificate mc-shop --cert "$BATS_TEST_TMPDIR/junk.pem" --key "$PKI/shop.key"
	expect_status 65
	expect_one_line_error certctl-import
	expect_contains "$stderr" "junk.pem"
	run --separate-stderr certctl-import --certificate mc-shop --cert "$PKI/shop.pem" --key "$BATS_TEST_TMPDIR/junk.pem"
	expect_status 65
	expect_one_line_error certctl-import
	expect_equal 0 "$(versions)" "versions"
}

@test "import version: without CERTCTL_KEY_FILE it exits 78 and stores nothing" {
	unset CERTCTL_KEY_FILE
	run --separate-stderr certctl-import --certificate mc-shop --cert "$PKI/shop.pem" --key "$PKI/shop.key"
	expect_status 78
	expect_one_line_error certctl-import
	expect_contains "$stderr" "CERTCTL_KEY_FILE"
	expect_equal 0 "$(versions)" "versions"
}

@test "import version: an unknown certificate id exits 66 and stores nothing" {
	run --separate-stderr certctl-import --certificate mc-nope --cert "$PKI/shop.pem" --key "$PKI/shop.key"
	expect_status 66
	expect_one_line_error certctl-import
	expect_contains "$stderr" "mc-nope"
	expect_equal 0 "$(versions)" "versions"
}

@test "import version: a certbot lineage directory is read as cert, chain and privkey" {
	# as certbot lays it out: live/NAME/*.pem are symlinks into archive/NAME/*1.pem
	archive="$BATS_TEST_TMPDIR/archive/shop.example" lineage="$BATS_TEST_TMPDIR/live/shop.example"
	mkdir -p "$archive" "$lineage"
	cp "$PKI/shop.pem" "$archive/cert1.pem"
	cp "$PKI/chain.pem" "$archive/chain1.pem"
	cat "$PKI/shop.pem" "$PKI/chain.pem" > "$archive/fullchain1.pem"
	cp "$PKI/shop.key" "$archive/privkey1.pem"
	for file in cert chain fullchain privkey; do
		ln -s "../../archive/shop.example/${file}1.pem" "$lineage/$file.pem"
	done
	run --separate-stderr certctl-import --certificate mc-shop --certbot-lineage "$lineage"
	expect_status 0
	expect_equal "$(fingerprint "$PKI/shop.pem")" "$(jq -r .fingerprint_sha256 <<<"$output")"
	expect_equal "$(openssl x509 -in "$PKI/chain.pem")" "$(sql "SELECT chain_pem FROM certificate_versions")" "chain_pem"
}

@test "import version: importing the same leaf again is idempotent" {
	certctl-import --certificate mc-shop --cert "$PKI/shop.pem" --key "$PKI/shop.key" > "$BATS_TEST_TMPDIR/first"
	run --separate-stderr certctl-import --certificate mc-shop --cert "$PKI/shop.pem" --key "$PKI/shop.key"
	expect_status 0
	expect_equal "$(jq -r .version_id "$BATS_TEST_TMPDIR/first")" "$(jq -r .version_id <<<"$output")" "version id"
	expect_equal true "$(jq -r .already_imported <<<"$output")"
	expect_equal 1 "$(versions)" "versions"
	expect_equal 1 "$(sql "SELECT count(*) FROM audit_events WHERE action = 'certificate_version_imported'")"
}

@test "import version: re-importing with --enqueue enqueues nothing" {
	sql "INSERT INTO agents (id) VALUES ('agent-web01');
	     INSERT INTO deployment_targets (id, type, agent_id) VALUES ('target-web01-nginx', 'nginx', 'agent-web01');
	     INSERT INTO certificate_targets VALUES ('mc-shop', 'target-web01-nginx')"
	certctl-import --certificate mc-shop --cert "$PKI/shop.pem" --key "$PKI/shop.key" >/dev/null
	run --separate-stderr certctl-import --certificate mc-shop --cert "$PKI/shop.pem" --key "$PKI/shop.key" --enqueue
	expect_status 0
	expect_equal 1 "$(printf '%s\n' "$output" | wc -l)" "output lines"
	expect_equal true "$(jq -r .already_imported <<<"$output")"
	expect_equal 0 "$(sql "SELECT count(*) FROM jobs")" "jobs"
}

@test "import version: a renewed leaf becomes a second, current version" {
	certctl-import --certificate mc-shop --cert "$PKI/shop.pem" --key "$PKI/shop.key" >/dev/null
	make_leaf "$PKI" renewed shop.example 25
	run --separate-stderr certctl-import --certificate mc-shop --cert "$PKI/renewed.pem" --key "$PKI/renewed.key"
	expect_status 0
	expect_equal 2 "$(versions)" "versions"
	expect_equal "$(fingerprint "$PKI/renewed.pem")" \
		"$(sql "SELECT fingerprint_sha256 FROM certificate_versions WHERE certificate_id = 'mc-shop' ORDER BY created_at DESC, id DESC LIMIT 1")"
}

@test "import version: --enqueue creates the deployment jobs in the same run" {
	sql "INSERT INTO agents (id, public_key) VALUES ('agent-web01', '$TEST_PUBLIC_KEY');
	     INSERT INTO deployment_targets (id, type, agent_id) VALUES ('target-web01-nginx', 'nginx', 'agent-web01');
	     INSERT INTO certificate_targets VALUES ('mc-shop', 'target-web01-nginx')"
	run --separate-stderr certctl-import --certificate mc-shop --cert "$PKI/shop.pem" --key "$PKI/shop.key" --enqueue
	expect_status 0
	expect_equal 2 "$(printf '%s\n' "$output" | wc -l)" "output lines"
	expect_equal "$(fingerprint "$PKI/shop.pem")" "$(head -n 1 <<<"$output" | jq -r .fingerprint_sha256)"
	job=$(tail -n 1 <<<"$output")
	expect_equal "Deployment Pending mc-shop target-web01-nginx agent-web01" \
		"$(jq -r '"\(.type) \(.status) \(.certificate_id) \(.target_id) \(.agent_id)"' <<<"$job")"
	expect_equal "$(jq -r .id <<<"$job")" "$(sql "SELECT id FROM jobs WHERE status = 'Pending' AND type = 'Deployment'")"
}

@test "import version: --enqueue with no active target keeps the version and warns" {
	run --separate-stderr certctl-import --certificate mc-shop --cert "$PKI/shop.pem" --key "$PKI/shop.key" --enqueue
	expect_status 0
	expect_equal 1 "$(printf '%s\n' "$output" | wc -l)" "output lines"
	expect_contains "$stderr" "no active target"
	expect_equal 1 "$(versions)" "versions"
	expect_equal 0 "$(sql "SELECT count(*) FROM jobs")" "jobs"
}

@test "import version: usage errors exit 64 before any database work" {
	run --separate-stderr certctl-import --cert "$PKI/shop.pem" --key "$PKI/shop.key"
	expect_status 64
	run --separate-stderr certctl-import --certificate mc-shop --cert "$PKI/shop.pem"
	expect_status 64
	run --separate-stderr certctl-import --certificate mc-shop --certbot-lineage /tmp --key "$PKI/shop.key"
	expect_status 64
	run --separate-stderr certctl-import --dsn "host=/nonexistent" --certificate mc-shop --cert "$PKI/shop.pem" --bogus
	expect_status 64
	expect_one_line_error certctl-import
}

@test "import: an unreachable database exits 69" {
	run --separate-stderr certctl-import --dsn "host=/nonexistent dbname=x" --certificate mc-shop \
		--cert "$PKI/shop.pem" --key "$PKI/shop.key"
	expect_status 69
	expect_one_line_error certctl-import
	run --separate-stderr certctl-import --dsn "host=/nonexistent dbname=x" < /dev/null
	expect_status 69
}

@test "import: --help and --version" {
	run --separate-stderr certctl-import --help
	expect_status 0
	expect_contains "$output" "--certbot-lineage"
	run --separate-stderr certctl-import --version
	expect_status 0
	expect_equal "certctl-import 0.1.0" "$output"
}

@test "import: a closed standard output exits 73 and stores nothing" {
	run --separate-stderr bash -c 'echo "{\"kind\":\"agent\",\"id\":\"agent-closed\"}" | certctl-import >&-'
	expect_status 73
	expect_one_line_error certctl-import
	expect_equal 0 "$(sql "SELECT count(*) FROM agents WHERE id = 'agent-closed'")" "agents stored"
}

# peak_rss_kib FILE: "Maximum resident set size" from a `/usr/bin/time -v -o FILE` run.
peak_rss_kib() {
	sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): //p' "$1"
}

@test "import: a 2 MiB line and a line with a NUL are 65 with their line numbers; the rest is stored in bounded memory" {
	input="$BATS_TEST_TMPDIR/inventory.jsonl"
	{
		echo '{"kind":"agent","id":"agent-a"}'
		printf '{"kind":"agent","id":"agent-big","name":"%s"}\n' "$(head -c 2097152 /dev/zero | tr '\0' x)"
		echo '{"kind":"agent","id":"agent-b"}'
		printf '{"kind":"agent","id":"agent-nul"}\0{"kind":"agent","id":"agent-joined"}\n'
		echo '{"kind":"agent","id":"agent-c"}'
	} > "$input"
	run --separate-stderr /usr/bin/time -v -o "$BATS_TEST_TMPDIR/time" certctl-import < "$input"
	expect_status 65
	expect_contains "$stderr" "certctl-import: line 2: longer than 1048576 bytes"
	expect_contains "$stderr" "certctl-import: line 4: holds a NUL byte"
	expect_equal 3 "$(grep -c '"action":"inserted"' <<<"$output")" "stored lines"
	expect_equal "agent-a agent-b agent-c" \
		"$(sql "SELECT string_agg(id, ' ' ORDER BY id) FROM agents WHERE id LIKE 'agent-%'")" "agents"
	rss=$(peak_rss_kib "$BATS_TEST_TMPDIR/time")
	[ -n "$rss" ] || { echo "no peak RSS in: $(cat "$BATS_TEST_TMPDIR/time")"; return 1; }
	[ "$rss" -lt 32768 ] || { echo "peak RSS ${rss} KiB, expected under 32768"; return 1; }
}

@test "import: a line of exactly 1 MiB is accepted; one byte more is not" {
	pad=$(( 1048576 - $(printf '{"kind":"agent","id":"agent-edge","name":""}' | wc -c) ))
	name=$(head -c "$pad" /dev/zero | tr '\0' y)
	run --separate-stderr certctl-import <<<"{\"kind\":\"agent\",\"id\":\"agent-edge\",\"name\":\"$name\"}"
	expect_status 0
	expect_equal "$pad" "$(sql "SELECT length(name) FROM agents WHERE id = 'agent-edge'")" "stored name length"
	run --separate-stderr certctl-import <<<"{\"kind\":\"agent\",\"id\":\"agent-over\",\"name\":\"${name}y\"}"
	expect_status 65
	expect_contains "$stderr" "line 1: longer than 1048576 bytes"
	expect_equal 0 "$(sql "SELECT count(*) FROM agents WHERE id = 'agent-over'")" "agents stored"
}

@test "import inventory: an agent line's public_key and db_role are stored; a new key drops the old sealed copies" {
	sql "INSERT INTO agents (id) VALUES ('agent-web01');
	     INSERT INTO deployment_targets (id, type, agent_id) VALUES ('target-a', 'file', 'agent-web01');
	     INSERT INTO certificate_targets VALUES ('mc-shop', 'target-a')"
	run --separate-stderr certctl-import <<<"{\"kind\":\"agent\",\"id\":\"agent-web01\",\"public_key\":\"$TEST_PUBLIC_KEY\",\"db_role\":\"role_web01\"}"
	expect_status 0
	expect_equal "$TEST_PUBLIC_KEY|role_web01" "$(sql "SELECT public_key || '|' || db_role FROM agents WHERE id = 'agent-web01'")"
	certctl-import --certificate mc-shop --cert "$PKI/shop.pem" --key "$PKI/shop.key" >/dev/null
	expect_equal 1 "$(sql "SELECT count(*) FROM version_keys WHERE agent_id = 'agent-web01'")" "sealed at import"
	# The same key again keeps the copy; another key drops it.
	certctl-import <<<"{\"kind\":\"agent\",\"id\":\"agent-web01\",\"public_key\":\"$TEST_PUBLIC_KEY\"}" >/dev/null
	expect_equal 1 "$(sql "SELECT count(*) FROM version_keys")" "same key"
	other=$(certctl-keygen --key-file "$BATS_TEST_TMPDIR/other.key" | jq -r .public_key)
	certctl-import <<<"{\"kind\":\"agent\",\"id\":\"agent-web01\",\"public_key\":\"$other\"}" >/dev/null
	expect_equal 0 "$(sql "SELECT count(*) FROM version_keys")" "another key"
	expect_equal "role_web01" "$(sql "SELECT db_role FROM agents WHERE id = 'agent-web01'")" "db_role kept"
}

@test "import inventory: a malformed public_key refuses the line (65) and stores nothing" {
	run --separate-stderr certctl-import <<<'{"kind":"agent","id":"agent-web01","public_key":"c2hvcnQ="}'
	expect_status 65
	expect_contains "$stderr" "agent agent-web01"
	expect_equal 0 "$(sql "SELECT count(*) FROM agents WHERE id = 'agent-web01'")"
}

# --- issuers and lifecycle fields ------------------------------------------

@test "import: issuer lines and the certificate's lifecycle fields, common name first among the names" {
	run --separate-stderr certctl-import <<-'EOF'
	{"kind":"issuer","id":"iss-le","name":"Let's Encrypt","type":"command","config":{"command":["lego-adapter","--server","https://acme.example/dir"],"timeout":120}}
	{"kind":"certificate","id":"mc-shop","common_name":"shop.example","sans":["www.shop.example","SHOP.example","192.0.2.7","2001:db8::1"],"key_type":"rsa-3072","key_mode":"agent","issuer_id":"iss-le","renew_before":864000,"auto_renew":false}
	EOF
	expect_status 0
	expect_equal '120|lego-adapter' "$(sql "SELECT config->>'timeout', config->'command'->>0 FROM issuers WHERE id = 'iss-le'")"
	expect_equal '{shop.example,www.shop.example,192.0.2.7,2001:db8::1}|rsa-3072|agent|iss-le|10 days|f' \
		"$(sql "SELECT sans, key_type, key_mode, issuer_id, renew_before, auto_renew FROM managed_certificates WHERE id = 'mc-shop'")"
	# Absent fields keep what is stored; sans alone give the common name.
	printf '%s\n' '{"kind":"certificate","id":"mc-shop","name":"Shop"}' '{"kind":"certificate","id":"mc-api","sans":["api.example"]}' | certctl-import >/dev/null
	expect_equal 'rsa-3072|agent|iss-le' "$(sql "SELECT key_type, key_mode, issuer_id FROM managed_certificates WHERE id = 'mc-shop'")"
	expect_equal 'api.example|ecdsa-p256|central|t' "$(sql "SELECT common_name, key_type, key_mode, auto_renew FROM managed_certificates WHERE id = 'mc-api'")"
}

@test "import: bad issuer and lifecycle fields are refused with the contract's codes, nothing stored" {
	before=$(sql "SELECT md5(string_agg(m::text, ',' ORDER BY id)) FROM managed_certificates m")
	for line_and_code in \
		'78 {"kind":"issuer","id":"iss-x","type":"command","config":{"timeout":30}}' \
		'78 {"kind":"issuer","id":"iss-x","type":"command","config":{"command":[]}}' \
		'78 {"kind":"issuer","id":"iss-x","type":"command","config":{"command":["","a"]}}' \
		'78 {"kind":"issuer","id":"iss-x","type":"command","config":{"command":["a",7]}}' \
		'78 {"kind":"issuer","id":"iss-x","type":"command","config":{"command":["a"],"timeout":86401}}' \
		'78 {"kind":"issuer","id":"iss-x","type":"command","config":{"command":["a"],"timeout":0}}' \
		'78 {"kind":"issuer","id":"iss-x","type":"acme","config":{"command":["a"]}}' \
		'65 {"kind":"issuer","id":"iss-x","type":"command","config":"lego"}' \
		'78 {"kind":"certificate","id":"mc-x","key_type":"ed25519"}' \
		'78 {"kind":"certificate","id":"mc-x","key_mode":"remote"}' \
		'65 {"kind":"certificate","id":"mc-x","sans":["shop.example","shop example"]}' \
		'65 {"kind":"certificate","id":"mc-x","sans":["-bad.example"]}' \
		'65 {"kind":"certificate","id":"mc-x","sans":"shop.example"}' \
		'65 {"kind":"certificate","id":"mc-x","renew_before":"10d"}' \
		'65 {"kind":"certificate","id":"mc-x","renew_before":0}' \
		'65 {"kind":"certificate","id":"mc-x","auto_renew":"yes"}' \
		'66 {"kind":"certificate","id":"mc-x","issuer_id":"iss-none"}'; do
		run --separate-stderr certctl-import <<<"${line_and_code#* }"
		expect_status "${line_and_code%% *}" || { echo "line: ${line_and_code#* }"; return 1; }
		expect_contains "$stderr" "line 1"
	done
	expect_equal 0 "$(sql "SELECT count(*) FROM issuers")" "issuers"
	# The schema refuses the same configs written by hand.
	for config in '{"timeout":30}' '{"command":[]}' '{"command":["","a"]}' '{"command":["a",7]}' \
		'{"command":["a"],"timeout":1.5}' '{"command":["a"],"timeout":86401}'; do
		run sql "INSERT INTO issuers (id, type, config) VALUES ('iss-x', 'command', '$config')"
		expect_status 1 || { echo "config: $config"; return 1; }
	done
	expect_equal "$before" "$(sql "SELECT md5(string_agg(m::text, ',' ORDER BY id)) FROM managed_certificates m")"
}
