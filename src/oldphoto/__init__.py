"""oldphoto: old-photo restoration (Wan et al., CVPR 2020) as a Snakemake pipeline.

The package is a library of pure, typed functions per stage; the Snakemake workflow in
``workflow/`` only adapts files to them.  Heavy imports (torch, dlib, cv2) happen inside the
modules that need them, never here.
"""

__version__ = "0.1.0"
