"""transferlab: does transfer learning help on my images, with which strategy, and can I prove it?"""

__version__ = "0.1.0"
