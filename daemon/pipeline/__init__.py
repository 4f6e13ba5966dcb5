"""The scoring pipeline shared by ``birdd replay`` and ``birdd run``: audio -> windows -> scores -> detections."""
