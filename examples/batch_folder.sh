#!/usr/bin/env bash
# Segment every scan in a folder with the dfcseg CLI, continuing past bad files.
#
#   bash examples/batch_folder.sh SCANS_DIR LABELS_DIR [dfcseg segment options...]
#   bash examples/batch_folder.sh scans/ labels/ --preset fast --mode 3d
#
# Each SCANS_DIR/NAME.nii[.gz] (and each sub-folder, taken as a DICOM series)
# becomes LABELS_DIR/NAME_labels.nii.gz. A scan that cannot be read is reported
# and skipped; the exit status is 1 if any scan failed, 130 on Ctrl-C.
# DFCSEG names the program to run (default: dfcseg on the PATH).
set -uo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 SCANS_DIR LABELS_DIR [dfcseg segment options...]" >&2
    exit 2
fi
scans=$1 labels=$2
shift 2
dfcseg=${DFCSEG:-dfcseg}
mkdir -p "$labels"

ok=0 failed=0
shopt -s nullglob
for scan in "$scans"/*.nii "$scans"/*.nii.gz "$scans"/*/; do
    name=$(basename "${scan%/}")
    name=${name%.gz}
    name=${name%.nii}
    out="$labels/${name}_labels.nii.gz"
    if [ -e "$out" ]; then
        echo "skip   $name (already done: $out)"
        continue
    fi
    $dfcseg segment "$scan" "$out" --quiet "$@"
    status=$?
    if [ $status -eq 130 ]; then
        echo "interrupted" >&2
        exit 130
    elif [ $status -eq 0 ]; then
        echo "done   $name -> $out"
        ok=$((ok + 1))
    else
        echo "FAILED $name (exit $status)" >&2
        failed=$((failed + 1))
    fi
done
echo "$ok segmented, $failed failed"
[ $failed -eq 0 ]
