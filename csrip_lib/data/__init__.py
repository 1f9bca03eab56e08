"""Face folders, identity-disjoint splits and the HR crop protocol; `csrip data` (LFW download); synthetic faces.
Imports core only."""
