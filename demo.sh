#!/usr/bin/env bash
# The demo behind `make demo`: train a model, replay the test soundscapes, score them, show detections; then run
# the station: a local mosquitto, `birdd run` on a replayed soundscape (accelerated) with the detection store and
# clips on, its detections as a subscriber receives them, and the web page (`birdd web`) for DEMO_SERVE_S seconds.
# Uses ../shared/bench206 (real bird recordings) when present, else a small SYNTHETIC corpus made here.
# A second run reuses the trained model while the data and the code that trains it are unchanged ($out/model.stamp).
set -euo pipefail
birdd=${1:-.venv/bin/birdd}
data=${2:-../shared/bench206}
out=${3:-out}
serve_s=${DEMO_SERVE_S:-60}
python=$(dirname "$birdd")/python
mkdir -p "$out"

started=()  # pids of what this script starts, stopped on exit
cleanup() {
    for pid in "${started[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${started[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

if [ -d "$data/train_audio" ]; then
    echo "== data: $data (real bird recordings)"
    real_data=1
else
    echo "== $data not found: using a SYNTHETIC corpus (made-up chirps, not birds) in $out/synthetic"
    data=$out/synthetic
    real_data=0
fi

# The model depends on the data and on the code that trains it (trainer/, the runtime's model and audio code).
code_hash=$(find trainer daemon/model daemon/audio pyproject.toml -type f \( -name '*.py' -o -name '*.json' \
    -o -name '*.toml' \) -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
if [ "$real_data" = 1 ]; then
    data_hash=$(find "$data" -type f -print0 | sort -z | xargs -0 sha256sum | sed "s#  $data/#  #" | sha256sum \
        | cut -d' ' -f1)
else
    data_hash=synthetic  # made by the code hashed above
fi
stamp="data $data_hash code $code_hash"
if [ -f "$out/model.stamp" ] && [ "$(cat "$out/model.stamp")" = "$stamp" ] && [ -f "$out/model/manifest.json" ]; then
    echo "== reusing the model in $out/model (data and trainer code unchanged since $out/model.stamp)"
else
    rm -f "$out/model.stamp"
    if [ "$real_data" = 0 ]; then
        "$birdd" synth "$data"
    fi
    echo "== training (birdd train)"
    "$birdd" train "$data" -o "$out/model" --no-progress
    echo "$stamp" > "$out/model.stamp"
fi
"$birdd" info "$out/model"

echo "== scoring the test soundscapes (birdd replay)"
"$birdd" replay "$data/test_soundscapes" -m "$out/model" -o "$out/submission.csv"
"$birdd" replay "$data/test_soundscapes" -m "$out/model" -o "$out/detections.csv" --format detections --min-conf 0.5

echo "== score (birdd eval)"
"$birdd" eval "$out/submission.csv" "$data/test_soundscapes_labels.csv"

echo "== a few detections ($out/detections.csv)"
head -n 8 "$out/detections.csv" | column -s, -t

# --- the station -------------------------------------------------------------------------------------------
station=$out/station
rm -rf "$station" && mkdir -p "$station"
listening() { "$python" -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 0.5)" "$1" \
    2>/dev/null; }
if listening 1883; then
    port=1883
    echo "== station: using the MQTT broker already listening on 127.0.0.1:1883"
else
    port=$("$python" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
    printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$port" > "$station/mosquitto.conf"
    mosquitto -c "$station/mosquitto.conf" > "$station/mosquitto.log" 2>&1 &
    started+=($!)
    for _ in $(seq 50); do listening "$port" && break; sleep 0.1; done
    echo "== station: started mosquitto on 127.0.0.1:$port"
fi
soundscapes=$(find "$data/test_soundscapes" -type f \( -name '*.ogg' -o -name '*.wav' -o -name '*.flac' \) | sort \
    | head -n 3 | sed 's/.*/"&"/' | paste -sd, -)
cat > "$station/config.toml" <<EOF
[station]
name = "demo"
[audio]
source = "file"
files = [$soundscapes]
realtime = false
[model]
path = "$out/model"
[detection]
threshold = 0.5
[mqtt]
host = "127.0.0.1"
port = $port
[outbox]
path = "$station/outbox.sqlite"
[store]
path = "$station/detections.sqlite"
[clips]
dir = "$station/clips"
min_free_mb = 100.0
[web]
bind = "127.0.0.1"
port = ${DEMO_WEB_PORT:-8080}
EOF
if ! "$birdd" web --help >/dev/null 2>&1; then  # `birdd web` comes with issue 12's web part
    sed -i '/^\[web\]/,$d' "$station/config.toml"
fi

echo "== station: birdd run on $(echo "$soundscapes" | tr ',' '\n' | wc -l) soundscape(s), as fast as it goes;" \
     "detections as mosquitto_sub receives them on birdd/demo/detections:"
mosquitto_sub -h 127.0.0.1 -p "$port" -t birdd/demo/detections -F '%p' > >("$python" -u -c '
import json, sys
for line in sys.stdin:
    d = json.loads(line)
    print("  #%s %s %-28s %.2f  clip %s" % (d.get("id"), d["end"][11:19], d["common_name"], d["confidence"],
                                           d.get("clip")))
') &
started+=($!)  # mosquitto_sub; the formatter ends with it
sleep 0.5
"$birdd" run -c "$station/config.toml" 2> "$station/birdd.log" || { echo "birdd run failed:"; tail "$station/birdd.log"; exit 1; }
sleep 1  # the last messages reach the subscriber
rows=$("$python" -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT COUNT(*), COUNT(clip) FROM detections').fetchone())" "$station/detections.sqlite")
echo "== station: (detections, clips) in $station/detections.sqlite: $rows; clips in $station/clips:"
find "$station/clips" -type f | sort | head -n 4 | sed 's/^/  /'

if "$birdd" web --help >/dev/null 2>&1; then
    "$birdd" web -c "$station/config.toml" 2> "$station/web.log" &
    started+=($!)
    echo "== station: the web page is at http://127.0.0.1:${DEMO_WEB_PORT:-8080}/ for ${serve_s} s" \
         "(DEMO_SERVE_S=0 skips; Ctrl-C ends it)"
    sleep "$serve_s"
else
    echo "== station: 'birdd web' is not in this version; the page is skipped"
fi
