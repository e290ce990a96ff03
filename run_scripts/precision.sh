# Sourced by train_caption.sh and scst.sh: appends the precision options to the `args` array.
# Precision as OFA's GPU scripts (--fp16, loss-scale window 512); PRECISION=amp (fp16 autocast on a GPU,
# bf16 on a CPU) or fp32 to change it; without a GPU (or with DEVICE_ARGS=--cpu) the default is fp32.
command -v nvidia-smi > /dev/null && [[ "$DEVICE_ARGS" != *--cpu* ]] && PRECISION=${PRECISION:-fp16} || PRECISION=${PRECISION:-fp32}
case "$PRECISION" in
  fp16) args+=(--fp16 --fp16-scale-window 512) ;; amp) args+=(--amp) ;; fp32) ;;
  *) echo "PRECISION must be fp16, amp or fp32, got $PRECISION" >&2; exit 2 ;;
esac
