# Sourced by every run_script.sh: the portable kernel setting (common/plumbing/seeding.py, PORTABLE_KERNELS), so that
# the same command, commit and seed give the same rows on any x86-64 CPU with AVX2, not only on the machine
# that made the committed logs (grokking_nc_rf/README.md, "Reproducibility"). A variable already set wins;
# KERNELS=native leaves every library its own choice (on an AVX-512 CPU that gives other rows).
case "${KERNELS:-portable}" in
    portable)
        case "$(uname -m)" in
            x86_64|amd64)
                export ATEN_CPU_CAPABILITY="${ATEN_CPU_CAPABILITY:-avx2}" MKL_CBWR="${MKL_CBWR:-AVX2}" \
                    ONEDNN_MAX_CPU_ISA="${ONEDNN_MAX_CPU_ISA:-AVX2}" ;;
        esac ;;
    native) ;;
    *) echo "error: KERNELS must be portable or native, got '$KERNELS'" >&2; exit 2 ;;
esac
