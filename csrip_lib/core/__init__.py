"""The ground floor: presets and degradation as configuration, safe checkpoints, devices, output folders, result
files, and what the user sees (one-line errors, argument types, progress bars). Imports nothing else of
csrip_lib."""
