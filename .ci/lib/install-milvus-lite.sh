#!/usr/bin/env bash
# Installs Milvus Lite 3.2.2 for the tests: the PyPI wheel `milvus-lite`
# (a pure-Python reimplementation of Milvus' gRPC API, the project's current
# local server) and `pymilvus` 3.0.2, whose generated gRPC code the server
# imports, with every dependency pinned by version and sha256 (wheels for
# CPython 3.11-3.13 on x86_64 Linux) and installed with --no-deps
# --require-hashes into .cache/milvus-lite-venv. The lock below is what
# `pip install milvus-lite==3.2.2 pymilvus==3.0.2` resolved to; to change
# it, `pip download --no-deps --only-binary :all: --python-version V` each
# pin for V = 3.11, 3.12, 3.13 and take the sha256 of every wheel.
# Idempotent: reinstalls only when the lock changes. Prints the venv's
# python to stdout.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv="$root/.cache/milvus-lite-venv"
stamp="$venv/.lock.sha256"
lock=$(cat <<'LOCK'
milvus-lite==3.2.2 \
    --hash=sha256:106e2437054713afa31208cd081f1e2682253213949a5f544d983dfce1b3a16d
pymilvus==3.0.2 \
    --hash=sha256:0ec7ca3a7d24d2ce13b2610c577f0978b08f461176222ea4dc1440375efc1cea
cachetools==8.0.3 \
    --hash=sha256:08bc12eeb7c7ab68abbe2d64d07fd7923ff532e32ff04ae27d22add1c5e8a5f9
certifi==2026.10.19.post1 \
    --hash=sha256:1324c476b4811eff41a8bc2122cd0bbd4d9c7234c725446d99ab1612b3a7fdd2
charset-normalizer==3.5.3 \
    --hash=sha256:2a6f937e0b70133d1f826d0a253331b6fe1a4c874808cc12e16f2fb8177042f4 \
    --hash=sha256:e5e4785d8a0adeadfbdf75f4efc357911842674651cbafd7e97f69b11ec3cbc6 \
    --hash=sha256:656b9744bac4493561d28b56d7d646afd7a8471254ef7004d849aa8368020037
faiss-cpu==1.15.1 \
    --hash=sha256:f2c31b7f2f6647eb76829a5cfe3c398fb9346df9f26b1d4db35269c91eb58c33
grpcio==1.85.4 \
    --hash=sha256:bc2d0a5876c4cbeaf9576db1f36fcee2810c506a0b677608f505e7c8c82a605f \
    --hash=sha256:f279c333de857630e12ce2751672cb0825d1df2f6f2ec209d0d40f86a26e4ac3 \
    --hash=sha256:0988d60f32439566cb4e66be42e2c6bf6e1403177d41256dd87b4a34ab8c95f7
idna==3.21 \
    --hash=sha256:387ab0bbea1ee7a196ea5b24eb007bad0242cc3127fe96713939942bc9e720d7
numpy==2.4.6 \
    --hash=sha256:89cd468399cfd2504718f0ba50e410dca55a170b61a02ad92bb18c8a65186e93 \
    --hash=sha256:90f9849678c75fe7afa2d348ac842c168b0a4d3d61919687216dfc547976d853 \
    --hash=sha256:a7830bab239b79cda9c08c2da014761cafb48da6150e1da17ac06283f43b6089
orjson==3.13.0 \
    --hash=sha256:89bcf2d4bc6c9a7e1763c8cf534f38712e66b76a0fefda7fb7785462f0d635e4 \
    --hash=sha256:bceadfd314bd238f584fc229a4bbaf0e573597e7a026dec5429fbf29fd66c641 \
    --hash=sha256:cbed5f4c4b88d94bcc36115f4c3bb3aa25da1563a5c3328aa3acebce2b083040
packaging==26.4 \
    --hash=sha256:81383611a09c1bc0b08b76e0fd5829d7c6824c65b27a6aee339da133f4233ea2
pandas==3.1.2 \
    --hash=sha256:430246ff24c68d22e83a00976928095bee4bf82885ce5123ef71baa0f303dbbd \
    --hash=sha256:fd9db4e343bdea7949c1daa8c532839ebf3ab00176b435b51cd8528af1e3d045 \
    --hash=sha256:8b019b0f4875226840cd5ccaed037214f3498f11a28429b62e0d484686ca194f
protobuf==7.36.2 \
    --hash=sha256:89f23aa53c24553a2416fd4fd1ec06f74fa42b14b546d8883128813f775bbfd2
pyarrow==26.0.1 \
    --hash=sha256:39cb0f2418282c24bea6ceda77b03e5a8f0a5766b63a8bf194d4e2a2c423548c \
    --hash=sha256:c718bf97a92a6dea97fd1062c3b9f9e2e83cb9cc926e752289fa4ffff41738f9 \
    --hash=sha256:f71221bbc7707e3fad920d0478db9350791d4714ec445299ee0d56559fbc156c
python-dateutil==4.0.0 \
    --hash=sha256:a5e246f79eb80475e691bf93862cead98decd8a498cf53ba0516fcdc0f50dc1c
python-dotenv==1.2.4 \
    --hash=sha256:42269a8a5b3fd54ffa6f3d84b18abed50064717576b4ecf03dc4a55d8aa04fdc
requests==2.34.2 \
    --hash=sha256:2a0d60c172f83ac6ab31e4554906c0f3b3588d37b5cb939b1c061f4907e278e0
typing_extensions==4.16.0 \
    --hash=sha256:481caa481374e813c1b176ada14e97f1f67a4539ce9cfeb3f350d78d6370c2e8
tzdata==2026.6 \
    --hash=sha256:0a10eec6e13ef16b627fabed9a5f2ba61a62b1c67f327305f4e7e412a70b4aec
urllib3==2.8.0 \
    --hash=sha256:0cf3cae568d36aa9576b28dfb35f11328f1cb974ca7647d9475ebb86c75ac6e3
LOCK
)
want=$(sha256sum <<<"$lock" | cut -d' ' -f1)
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  echo "$venv/bin/python"
  exit 0
fi
if ! python3 -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))'; then
  echo "install-milvus-lite: the lock holds wheels for CPython 3.11-3.13; python3 is $(python3 -V 2>&1)" >&2
  exit 1
fi
rm -rf "$venv"
python3 -m venv "$venv"
req=$(mktemp)
trap 'rm -f "$req"' EXIT
echo "$lock" > "$req"
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --require-hashes \
  --only-binary :all: -r "$req" >&2
echo "$want" > "$stamp"
echo "milvus-lite 3.2.2 (PyPI wheel milvus-lite, with pymilvus 3.0.2) installed into $venv" >&2
echo "$venv/bin/python"
