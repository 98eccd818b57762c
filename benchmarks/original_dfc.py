"""A straightforward re-implementation of the original DFC training loop (the speed reference).

Follows ``demo.py`` of kanezaki/pytorch-unsupervised-segmentation-tip (Kim,
Kanezaki & Tanaka, IEEE TIP 2020; MIT licence) as published, with
``--visualize 0``: the same network (conv 3×3 → ReLU → BatchNorm, ``n_conv``
times, then a 1×1 conv → BatchNorm; 100 channels), SGD lr 0.1 momentum 0.9,
cross-entropy to the argmax, continuity as the L1 norm of the vertical and
horizontal differences of the responses, the optional scribble loss, and the
per-iteration ``target.data.cpu().numpy()`` + ``np.unique`` that drives the
stop rule. Only differences: the image is read with scikit-image (converted to
OpenCV's BGR order), torch is seeded, the stop rule can be switched off to
time a fixed number of iterations, and per-iteration times are recorded.
"""

from __future__ import annotations

import time

import numpy as np


def _net(input_dim, n_channel, n_conv):
    import torch.nn as nn
    import torch.nn.functional as F

    class MyNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(input_dim, n_channel, kernel_size=3, stride=1, padding=1)
            self.bn1 = nn.BatchNorm2d(n_channel)
            self.conv2 = nn.ModuleList()
            self.bn2 = nn.ModuleList()
            for _ in range(n_conv - 1):
                self.conv2.append(
                    nn.Conv2d(n_channel, n_channel, kernel_size=3, stride=1, padding=1))
                self.bn2.append(nn.BatchNorm2d(n_channel))
            self.conv3 = nn.Conv2d(n_channel, n_channel, kernel_size=1, stride=1, padding=0)
            self.bn3 = nn.BatchNorm2d(n_channel)

        def forward(self, x):
            x = self.bn1(F.relu(self.conv1(x)))
            for i in range(n_conv - 1):
                x = self.bn2[i](F.relu(self.conv2[i](x)))
            return self.bn3(self.conv3(x))

    return MyNet()


def read_bgr(path):
    """An RGB image file as OpenCV would read it: (H, W, 3) uint8 in BGR order."""
    from skimage.io import imread

    im = imread(path)
    if im.ndim == 2:
        im = np.stack([im] * 3, axis=-1)
    return np.ascontiguousarray(im[..., :3][..., ::-1])


def original_dfc(im, *, scribble=None, n_channel=100, max_iter=1000, min_labels=3, lr=0.1,
                 n_conv=2, stepsize_sim=1.0, stepsize_con=1.0, stepsize_scr=0.5,
                 stop_rule=True, seed=0, device="cpu"):
    """Run the original training loop on one 2D image.

    Parameters
    ----------
    im : (H, W, C) uint8 ndarray
        The image (BGR, as ``cv2.imread`` gives it).
    scribble : (H, W) int ndarray or None
        Class ids on scribbled pixels, 255 on unlabelled ones (the paper's format).
    stop_rule : bool
        False runs exactly ``max_iter`` iterations (for timing).

    Returns
    -------
    labels : (H, W) int64 ndarray
        The argmax of the final forward pass (arbitrary cluster ids).
    iteration_s : list of float
        Wall time of every iteration.
    """
    import torch
    import torch.nn as nn
    import torch.optim as optim

    torch.manual_seed(seed)
    np.random.seed(seed)
    data = torch.from_numpy(np.array([im.transpose((2, 0, 1)).astype("float32") / 255.0]))
    data = data.to(device)
    if scribble is not None:
        mask = scribble.reshape(-1)
        mask_inds = np.unique(mask)
        mask_inds = np.delete(mask_inds, np.argwhere(mask_inds == 255))
        inds_sim = torch.from_numpy(np.where(mask == 255)[0]).to(device)
        inds_scr = torch.from_numpy(np.where(mask != 255)[0]).to(device)
        target_scr = torch.from_numpy(mask.astype(np.int64)).to(device)
        min_labels = len(mask_inds)

    model = _net(data.size(1), n_channel, n_conv).to(device)
    model.train()
    loss_fn = nn.CrossEntropyLoss()
    loss_fn_scr = nn.CrossEntropyLoss()
    loss_hpy = nn.L1Loss(reduction="mean")
    loss_hpz = nn.L1Loss(reduction="mean")
    hpy_target = torch.zeros(im.shape[0] - 1, im.shape[1], n_channel, device=device)
    hpz_target = torch.zeros(im.shape[0], im.shape[1] - 1, n_channel, device=device)
    optimizer = optim.SGD(model.parameters(), lr=lr, momentum=0.9)

    iteration_s = []
    for _ in range(max_iter):
        start = time.perf_counter()
        optimizer.zero_grad()
        output = model(data)[0]
        output = output.permute(1, 2, 0).contiguous().view(-1, n_channel)

        output_hp = output.reshape((im.shape[0], im.shape[1], n_channel))
        hpy = output_hp[1:, :, :] - output_hp[0:-1, :, :]
        hpz = output_hp[:, 1:, :] - output_hp[:, 0:-1, :]
        lhpy = loss_hpy(hpy, hpy_target)
        lhpz = loss_hpz(hpz, hpz_target)

        _, target = torch.max(output, 1)
        im_target = target.data.cpu().numpy()
        n_labels = len(np.unique(im_target))

        if scribble is not None:
            loss = (stepsize_sim * loss_fn(output[inds_sim], target[inds_sim])
                    + stepsize_scr * loss_fn_scr(output[inds_scr], target_scr[inds_scr])
                    + stepsize_con * (lhpy + lhpz))
        else:
            loss = stepsize_sim * loss_fn(output, target) + stepsize_con * (lhpy + lhpz)
        loss.backward()
        optimizer.step()
        loss.item()  # the original prints it every iteration: a device sync
        if device != "cpu":
            torch.cuda.synchronize()
        iteration_s.append(time.perf_counter() - start)
        if stop_rule and n_labels <= min_labels:
            break

    output = model(data)[0]
    output = output.permute(1, 2, 0).contiguous().view(-1, n_channel)
    _, target = torch.max(output, 1)
    return target.data.cpu().numpy().reshape(im.shape[:2]), iteration_s
