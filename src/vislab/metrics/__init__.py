"""Scores: the course's mIoU and the `vislab evaluate` command."""
