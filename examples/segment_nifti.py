"""Segment one scan with the Python API and save the labels beside it.

    python examples/segment_nifti.py demo-output/phantom.nii.gz demo-output/my_labels.nii.gz

Any format the reader knows works as input (NIfTI, NRRD, MHA, a DICOM folder);
the labels are written as NIfTI on the scan's own grid, so they open aligned
in napari, 3D Slicer and ITK-SNAP.
"""

import argparse
import dataclasses

import numpy as np

from napari_dfcseg import DFCConfig, read_volume, segment, write_labels


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scan", help="scan to segment")
    parser.add_argument("labels", help="label volume to write (.nii.gz)")
    parser.add_argument("--mode", choices=("2d", "3d"), default="2d")
    parser.add_argument("--preset", default="default", help="paper, default or fast")
    parser.add_argument("--max-iter", type=int, default=None, help="fewer iterations: faster")
    args = parser.parse_args(argv)

    volume = read_volume(args.scan)  # voxels (z, y, x) + spacing, origin, direction
    config = DFCConfig.preset(args.preset)
    if args.max_iter:
        config = dataclasses.replace(config, max_iter=args.max_iter)

    result = segment(
        volume.array,
        mode=args.mode,
        spacing=volume.spacing,  # mm, (z, y, x): thick slices are handled as such
        channel_axis=volume.channel_axis,
        config=config,
        seed=0,
    )
    written = write_labels(args.labels, result.labels, like=volume)  # the scan's geometry
    n_labels = int(np.count_nonzero(np.unique(result.labels)))
    print(f"{n_labels} labels after {result.n_iterations} iterations; wrote {', '.join(map(str, written))}")


if __name__ == "__main__":
    main()
