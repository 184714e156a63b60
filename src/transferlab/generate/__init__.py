"""The generate stage: synthetic plates like the user's.

``render`` draws one plate image per seed (layouts from ``formats``, characters from
``glyphs``, plate ``styles``, ``scenery`` around the plate and the camera's ``capture``);
``render.run`` writes the dataset the split stage (or ``pretrain``) reads.
"""

