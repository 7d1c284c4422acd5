# Acting as the issuer for a key made on an agent (key_mode agent), the way
# certctl-issue will: the agent's CSR signed with the test PKI (pki.bash),
# stored as a version with no key at all.
# sign_csr DIR NAME CSR_FILE [DAYS]        -> DIR/NAME.pem, the CSR's names copied
# store_keyless_version CERT_ID CERT CHAIN -> the new version's id
# key_public_sha256 KEY / cert_public_sha256 CERT / served_public_sha256 PORT
#   -> SHA-256 of the DER SubjectPublicKeyInfo, as job_csrs.public_key_sha256

sign_csr() {
	local dir=$1 name=$2 csr=$3 days=${4:-20}
	openssl x509 -req -in "$csr" -CA "$dir/chain.pem" -CAkey "$dir/intermediate.key" -CAcreateserial \
		-days "$days" -copy_extensions copy -out "$dir/$name.pem" \
		-extfile <(printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n') 2>/dev/null
}

store_keyless_version() {
	local certificate_id=$1 cert=$2 chain=$3
	as_superuser psql -XAtq -v ON_ERROR_STOP=1 -v certificate_id="$certificate_id" \
		-v cert="$(openssl x509 -in "$cert")"$'\n' -v chain="$(cat "$chain")"$'\n' \
		-v fingerprint="$(fingerprint "$cert")" \
		-v serial="$(openssl x509 -in "$cert" -noout -serial | cut -d= -f2 | tr 'A-F' 'a-f')" \
		-v subject="$(openssl x509 -in "$cert" -noout -subject -nameopt RFC2253 | sed 's/^subject=//')" \
		-v not_before="$(openssl x509 -in "$cert" -noout -startdate | cut -d= -f2)" \
		-v not_after="$(openssl x509 -in "$cert" -noout -enddate | cut -d= -f2)" <<-'SQL'
	INSERT INTO certificate_versions (id, certificate_id, serial_number, subject, not_before, not_after,
	                                  fingerprint_sha256, cert_pem, chain_pem, key_sealed, key_algorithm)
	VALUES ('cv-' || gen_random_uuid(), :'certificate_id', :'serial', :'subject', :'not_before',
	        :'not_after', :'fingerprint', :'cert', :'chain', NULL, NULL)
	RETURNING id;
	SQL
}

key_public_sha256() {
	openssl pkey -in "$1" -pubout -outform DER | sha256sum | cut -d' ' -f1
}

cert_public_sha256() {
	openssl x509 -in "$1" -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1
}

served_public_sha256() {
	openssl s_client -connect "127.0.0.1:$1" -servername "${2:-localhost}" </dev/null 2>/dev/null |
		openssl x509 -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1
}
