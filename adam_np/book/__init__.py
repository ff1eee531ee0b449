"""D2L chapter 7 (§7.8 Adam) reproduced without a framework.

:mod:`.data` (airfoil and synthetic data), :mod:`.linreg` (the model and its hand-written gradients),
:mod:`.chapter7` (the chapter's optimizers), :mod:`.train` (``train_ch7``), :mod:`.resume` (bitwise
resumable runs) and :mod:`.plot` (the chapter's figures).
"""
