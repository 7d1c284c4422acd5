# A throw-away PKI made with openssl: root CA -> intermediate -> leaves.
# Usage: make_pki DIR; make_leaf DIR NAME COMMON_NAME [DAYS]
# gives DIR/NAME.pem (leaf), DIR/NAME.key, DIR/chain.pem (intermediate),
# DIR/root.pem; fingerprint FILE prints the leaf's SHA-256 (lowercase hex).

make_pki() {
	local dir=$1
	mkdir -p "$dir"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$dir/root.key" -out "$dir/root.pem" -days 30 \
		-subj "/CN=certctl test root" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$dir/intermediate.key" -subj "/CN=certctl test intermediate" 2>/dev/null |
		openssl x509 -req -CA "$dir/root.pem" -CAkey "$dir/root.key" -CAcreateserial \
			-days 30 -out "$dir/chain.pem" \
			-extfile <(printf 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n') \
			2>/dev/null
}

make_leaf() {
	local dir=$1 name=$2 cn=$3 days=${4:-20}
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$dir/$name.key" -subj "/CN=$cn" 2>/dev/null |
		openssl x509 -req -CA "$dir/chain.pem" -CAkey "$dir/intermediate.key" -CAcreateserial \
			-days "$days" -out "$dir/$name.pem" \
			-extfile <(printf 'subjectAltName=DNS:%s,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$cn") \
			2>/dev/null
	chmod 0600 "$dir/$name.key"
}

fingerprint() {
	openssl x509 -in "$1" -outform DER | sha256sum | cut -d' ' -f1
}
