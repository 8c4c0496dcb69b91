"""Compatibility names for the former ``oldphoto.imageio`` (split by concern).

Kept only while the job entry points (``jobs.py``, ``stages.py``, ``workflow_support.py``,
``workflow/scripts``) migrate to the new modules; it will be removed then. New code imports from:

* :mod:`oldphoto.inputs` -- input discovery and output names;
* :mod:`oldphoto.decode` -- decoding a photo and the conversions of the final outputs;
* :mod:`oldphoto.atomic` -- atomic writes.
"""

from oldphoto.atomic import TEMP_PREFIX as TEMP_PREFIX
from oldphoto.atomic import fsync_dir as fsync_dir
from oldphoto.atomic import read_png_text as read_png_text
from oldphoto.atomic import write_bytes_atomic as write_bytes_atomic
from oldphoto.atomic import write_json as write_json
from oldphoto.atomic import write_png as write_png
from oldphoto.decode import DEFAULT_MAX_PIXELS as DEFAULT_MAX_PIXELS
from oldphoto.decode import DecodedImage as DecodedImage
from oldphoto.decode import apply_alpha as apply_alpha
from oldphoto.decode import orient as orient
from oldphoto.decode import read_image as read_image
from oldphoto.decode import resize_to as resize_to
from oldphoto.inputs import IMAGE_EXTENSIONS as IMAGE_EXTENSIONS
from oldphoto.inputs import SIDECAR_EXTENSIONS as SIDECAR_EXTENSIONS
from oldphoto.inputs import InputSet as InputSet
from oldphoto.inputs import list_inputs as list_inputs
from oldphoto.inputs import safe_stem as safe_stem
from oldphoto.inputs import stem_problem as stem_problem
