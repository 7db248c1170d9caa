"""Brian2 microcircuits of value and error neurons, built from the same ``PCSpec`` as the
torch backend.

Import what you need from the submodules (importing them imports Brian2; this package
itself imports nothing heavy):

* ``circuits.pc.build_pc_circuit``: supervised predictive coding, every relaxation;
* ``circuits.ar.build_ar_circuit``: activation relaxation, R1-R8;
* ``circuits.generative``: the hierarchical generative network and the dynamical lattice
  (``build_pc_circuit`` builds them from a ``GenerativeSpec`` or ``LatticeSpec``);
* ``circuits.kalman.build_kalman_circuit``: the predictive-coding Kalman filter;
* ``circuits.standalone.run_standalone``: the same circuits on the C++ standalone device;
* ``circuits.model.build_circuit_model``: a circuit behind the training loop's interface;
* ``circuits.drive``: targets, kernels, the phase schedule; ``circuits.equations``: the
  named equation strings; ``circuits.kernels``: the numba kernels.
"""
