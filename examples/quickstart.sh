#!/usr/bin/env bash
# Copyright 2026 The las-transformers authors. Licensed under the Apache License, Version 2.0.
#
# Quickstart: LaS attention against the softmax baseline on a small ListOps, on CPU, in a few minutes.
#
#   bash examples/quickstart.sh
#
# 1. creates (or reuses) a virtual environment in .venv and installs torch (CPU) and this package
#    (scripts/bootstrap_venv.sh, shared with the Makefile: it holds the torch pin);
# 2. generates a small ListOps set with our seeded generator (once: later runs reuse it);
# 3. trains a LaS model and the softmax baseline with the same settings, evaluates both on the test split;
# 4. prints a comparison table with a conclusion computed from the two test accuracies (difference against its
#    standard error), and writes comparison.md and learning_curves.png, plus a model card per model.
#
# Reuse an environment instead of installing:   PYTHON=/path/to/python bash examples/quickstart.sh
# Use .venv as it is, without pip:               SKIP_INSTALL=1 bash examples/quickstart.sh
# Every size below can be overridden the same way, e.g. EPOCHS=8 NUM_TRAIN=16000 bash examples/quickstart.sh
set -euo pipefail

# --- sizes (our choice: a few CPU minutes per model on 2 cores) ------------------------------------------------------
NUM_TRAIN=${NUM_TRAIN:-8000}          # generated ListOps examples (LRA: 96,000 / 2,000 / 2,000)
NUM_VAL=${NUM_VAL:-500}
NUM_TEST=${NUM_TEST:-500}
MIN_LENGTH=${MIN_LENGTH:-20}          # expression length window, tokens without brackets (LRA: 500 < length < 2000)
MAX_LENGTH=${MAX_LENGTH:-100}
EPOCHS=${EPOCHS:-4}
BATCH_SIZE=${BATCH_SIZE:-32}
LEARNING_RATE=${LEARNING_RATE:-0.001}
EVAL_STEPS=${EVAL_STEPS:-50}          # validation points on the learning curve
MODEL=${MODEL:-"hidden_size=64,num_hidden_layers=2,num_attention_heads=8"}   # 8 heads, as in the paper
SEED=${SEED:-42}
OUTPUT_DIR=${OUTPUT_DIR:-runs/quickstart}

cd "$(dirname "${BASH_SOURCE[0]}")/.."
START=$SECONDS
elapsed() { echo "$(( SECONDS - $1 ))s"; }

# --- 1. environment --------------------------------------------------------------------------------------------------
if [[ -n "${PYTHON:-}" ]]; then
    echo "==> Using the existing interpreter $PYTHON (no install)"
elif [[ "${SKIP_INSTALL:-0}" == "1" ]]; then
    echo "==> SKIP_INSTALL=1: using ${VENV:-.venv} as it is"
    PYTHON="${VENV:-.venv}/bin/python"
else
    # Creates the venv on a first run; later runs skip pip unless the torch pin or pyproject.toml changed.
    PYTHON=$(bash scripts/bootstrap_venv.sh | tail -n 1)
fi
echo "    environment ready after $(elapsed $START)"

# --- 2.-3. data and the two models -----------------------------------------------------------------------------------
# Without --data_dir, run_lra.py generates ListOps into ~/.cache/las-transformers/lra/<parameters> (once) and reuses it.
COMMON=(
    --task listops
    --generate_num_train "$NUM_TRAIN" --generate_num_val "$NUM_VAL" --generate_num_test "$NUM_TEST"
    --generate_min_length "$MIN_LENGTH" --generate_max_length "$MAX_LENGTH" --generate_seed 0
    --config_overrides "$MODEL"
    --num_train_epochs "$EPOCHS"
    --per_device_train_batch_size "$BATCH_SIZE" --per_device_eval_batch_size 100
    --learning_rate "$LEARNING_RATE" --warmup_steps 0.1
    --eval_strategy steps --eval_steps "$EVAL_STEPS"
    --save_strategy steps --save_steps "$EVAL_STEPS" --save_total_limit 1
    --logging_steps 5
    --seed "$SEED" --use_cpu
    --overwrite_output_dir True   # a rerun starts over (run_lra.py refuses a folder with checkpoints otherwise)
)
declare -A TRAIN_TIME
for ATTENTION in las softmax; do
    echo "==> Training $ATTENTION on ListOps ($NUM_TRAIN examples, lengths $MIN_LENGTH..$MAX_LENGTH, $EPOCHS epochs)"
    PHASE=$SECONDS
    "$PYTHON" examples/run_lra.py "${COMMON[@]}" --attention_type "$ATTENTION" --output_dir "$OUTPUT_DIR/$ATTENTION"
    TRAIN_TIME[$ATTENTION]=$(elapsed $PHASE)
done

# --- 4. comparison ---------------------------------------------------------------------------------------------------
echo
echo "==> LaS against softmax attention on ListOps (test split: $NUM_TEST examples)"
"$PYTHON" examples/compare_runs.py "$OUTPUT_DIR/las" "$OUTPUT_DIR/softmax" --labels LaS softmax \
    --output_dir "$OUTPUT_DIR" --title "ListOps quickstart: LaS vs softmax attention" \
    --note "What this shows: the whole pipeline (generation, training, evaluation, model cards) runs end to end; \
the conclusion above is computed by compare_runs.py from the two test accuracies and their standard errors, with \
$NUM_TEST test examples each. What it cannot show, whatever the numbers: that LaS handles long-range structure \
better. Expressions of $MIN_LENGTH to $MAX_LENGTH tokens have none, one seed is one draw of the training noise (the \
standard errors cover only the test sample), and the data are far smaller than the LRA's; the seeded study \
(examples/study, README 'Results') is where LaS is put to the test."
echo
echo "Wall time: LaS ${TRAIN_TIME[las]} (data generation included on a first run), softmax ${TRAIN_TIME[softmax]}, total $(elapsed $START)"
echo "Table:           $OUTPUT_DIR/comparison.md"
echo "Learning curves: $OUTPUT_DIR/learning_curves.png"
echo "Model cards:     $OUTPUT_DIR/las/README.md, $OUTPUT_DIR/softmax/README.md"
