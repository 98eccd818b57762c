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
time a fixed number of iterations, per-iteration times are recorded, and the
loop body is a method (:class:`OriginalDFC`) so that a benchmark can run it one
iteration at a time, interleaved with the engine's.
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


class OriginalDFC:
    """The original training loop, one iteration per :meth:`step` (so a benchmark can interleave it).

    Parameters as :func:`original_dfc`; construction does the original's set-up
    (seeding, the network, the loss objects, the optimizer).
    """

    def __init__(self, im, *, scribble=None, n_channel=100, min_labels=3, lr=0.1, n_conv=2,
                 stepsize_sim=1.0, stepsize_con=1.0, stepsize_scr=0.5, seed=0, device="cpu"):
        import torch
        import torch.nn as nn
        import torch.optim as optim

        torch.manual_seed(seed)
        np.random.seed(seed)
        self.im, self.n_channel, self.device = im, n_channel, device
        self.stepsize = (stepsize_sim, stepsize_con, stepsize_scr)
        data = torch.from_numpy(np.array([im.transpose((2, 0, 1)).astype("float32") / 255.0]))
        self.data = data.to(device)
        self.scribble = scribble
        if scribble is not None:
            mask = scribble.reshape(-1)
            mask_inds = np.unique(mask)
            mask_inds = np.delete(mask_inds, np.argwhere(mask_inds == 255))
            self.inds_sim = torch.from_numpy(np.where(mask == 255)[0]).to(device)
            self.inds_scr = torch.from_numpy(np.where(mask != 255)[0]).to(device)
            self.target_scr = torch.from_numpy(mask.astype(np.int64)).to(device)
            min_labels = len(mask_inds)
        self.min_labels = min_labels

        self.model = _net(self.data.size(1), n_channel, n_conv).to(device)
        self.model.train()
        self.loss_fn = nn.CrossEntropyLoss()
        self.loss_fn_scr = nn.CrossEntropyLoss()
        self.loss_hpy = nn.L1Loss(reduction="mean")
        self.loss_hpz = nn.L1Loss(reduction="mean")
        self.hpy_target = torch.zeros(im.shape[0] - 1, im.shape[1], n_channel, device=device)
        self.hpz_target = torch.zeros(im.shape[0], im.shape[1] - 1, n_channel, device=device)
        self.optimizer = optim.SGD(self.model.parameters(), lr=lr, momentum=0.9)

    def step(self):
        """One iteration of the original loop; returns the label count its stop rule sees."""
        import torch

        im, n_channel = self.im, self.n_channel
        stepsize_sim, stepsize_con, stepsize_scr = self.stepsize
        self.optimizer.zero_grad()
        output = self.model(self.data)[0]
        output = output.permute(1, 2, 0).contiguous().view(-1, n_channel)

        output_hp = output.reshape((im.shape[0], im.shape[1], n_channel))
        hpy = output_hp[1:, :, :] - output_hp[0:-1, :, :]
        hpz = output_hp[:, 1:, :] - output_hp[:, 0:-1, :]
        lhpy = self.loss_hpy(hpy, self.hpy_target)
        lhpz = self.loss_hpz(hpz, self.hpz_target)

        _, target = torch.max(output, 1)
        im_target = target.data.cpu().numpy()
        n_labels = len(np.unique(im_target))

        if self.scribble is not None:
            loss = (stepsize_sim * self.loss_fn(output[self.inds_sim], target[self.inds_sim])
                    + stepsize_scr * self.loss_fn_scr(output[self.inds_scr],
                                                      self.target_scr[self.inds_scr])
                    + stepsize_con * (lhpy + lhpz))
        else:
            loss = stepsize_sim * self.loss_fn(output, target) + stepsize_con * (lhpy + lhpz)
        loss.backward()
        self.optimizer.step()
        loss.item()  # the original prints it every iteration: a device sync
        if self.device != "cpu":
            torch.cuda.synchronize()
        return n_labels

    def labels(self):
        """The argmax of a forward pass (arbitrary cluster ids), (H, W) int64."""
        output = self.model(self.data)[0]
        output = output.permute(1, 2, 0).contiguous().view(-1, self.n_channel)
        _, target = output.max(1)
        return target.data.cpu().numpy().reshape(self.im.shape[:2])


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
    loop = OriginalDFC(im, scribble=scribble, n_channel=n_channel, min_labels=min_labels, lr=lr,
                       n_conv=n_conv, stepsize_sim=stepsize_sim, stepsize_con=stepsize_con,
                       stepsize_scr=stepsize_scr, seed=seed, device=device)
    iteration_s = []
    for _ in range(max_iter):
        start = time.perf_counter()
        n_labels = loop.step()
        iteration_s.append(time.perf_counter() - start)
        if stop_rule and n_labels <= loop.min_labels:
            break
    return loop.labels(), iteration_s
