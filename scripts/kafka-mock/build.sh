#!/usr/bin/env bash
# Builds .kafka-mock/kafka-mock: librdkafka's own mock Kafka cluster (librdkafka 2.15.1, whose
# sources ship inside the npm tarball of @confluentinc/kafka-javascript 1.10.1), patched in order by
# mock-kafkajs.patch (kafkajs compatibility: read_committed fetches, CreateTopics, DescribeGroups,
# LeaveGroup v0-1, group Empty when its last member leaves) and mock-transactions.patch (Kafka's
# transaction semantics: fencing by epoch, abort on InitProducerId and on timeout, offsets committed
# with the transaction) and mock-sequences.patch (Kafka's idempotent sequence checks: a resend of one
# of a producer's last 5 batches answered with its offset), linked statically with launcher.c.
#
# Cached: exits at once when .kafka-mock/stamp matches the inputs. Safe to run from several
# processes at once (one builds, the others wait for it). Needs gcc, make, patch, tar and npm;
# exits with status 3 and names the missing tools when some are absent.
# Env: KAFKA_MOCK_DIR (output directory, default <repo>/.kafka-mock).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
OUT="${KAFKA_MOCK_DIR:-$HERE/../../.kafka-mock}"
PKG=@confluentinc/kafka-javascript@1.10.1
INTEGRITY='sha512-KVePUBn21EqCVP9mfxzEuM3SYJHHEF7X+iiC2e43QQgDSyEaksInmCGooT3w5q+cNAdkSCrK71j0ICfqoSqZLw=='
PATCHES=(mock-kafkajs.patch mock-transactions.patch mock-sequences.patch) # applied in this order
STAMP="$PKG $(cd "$HERE" && cat build.sh "${PATCHES[@]}" launcher.c | sha256sum | cut -c1-16)"

fresh() { [ -x "$OUT/kafka-mock" ] && [ "$(cat "$OUT/stamp" 2>/dev/null)" = "$STAMP" ]; }
fresh && exit 0

missing=()
for tool in gcc make patch tar npm node flock; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if ((${#missing[@]})); then
  echo "kafka-mock: cannot build the Kafka mock cluster: missing ${missing[*]}" >&2
  echo "kafka-mock: on Debian/Ubuntu: apt-get install -y gcc make patch" >&2
  exit 3
fi

mkdir -p "$OUT"
exec 9>"$OUT/build.lock"
flock 9 # another process may be building: wait for it, then look again
fresh && exit 0

rm -rf "$OUT"/work.* # left by a build that was killed
WORK="$(mktemp -d "$OUT/work.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
LOG="$OUT/build.log"
: >"$LOG"
fail() {
  echo "kafka-mock: build failed at: $1 (last lines of $LOG below)" >&2
  tail -n 25 "$LOG" >&2
  exit 1
}
echo "kafka-mock: building the Kafka mock cluster (librdkafka 2.15.1 from $PKG, about 35 s, once)" >&2
cd "$WORK"
TGZ="$(npm pack "$PKG" --silent 2>>"$LOG")" || fail "npm pack $PKG"
GOT="sha512-$(node -e 'process.stdout.write(require("crypto").createHash("sha512").update(require("fs").readFileSync(process.argv[1])).digest("base64"))' "$TGZ")"
[ "$GOT" = "$INTEGRITY" ] || { echo "integrity $GOT, expected $INTEGRITY" >>"$LOG"; fail "tarball integrity check"; }
tar xzf "$TGZ" package/deps/librdkafka >>"$LOG" 2>&1 || fail "tar"
cd package/deps/librdkafka
for p in "${PATCHES[@]}"; do
  patch -p1 <"$HERE/$p" >>"$LOG" 2>&1 || fail "patch $p"
done
./configure --disable-ssl --disable-gssapi --disable-zstd --disable-curl --disable-zlib \
  --disable-lz4-ext --no-download >>"$LOG" 2>&1 || fail "configure"
make -C src -j"$(nproc)" librdkafka.a >>"$LOG" 2>&1 || fail "make"
gcc -O2 -Wall -Isrc -o "$WORK/kafka-mock" "$HERE/launcher.c" src/librdkafka.a \
  -lpthread -lm -ldl -lrt >>"$LOG" 2>&1 || fail "linking the launcher"
mv -f "$WORK/kafka-mock" "$OUT/kafka-mock"
echo "$STAMP" >"$OUT/stamp.tmp" && mv -f "$OUT/stamp.tmp" "$OUT/stamp"
echo "kafka-mock: built $OUT/kafka-mock" >&2
