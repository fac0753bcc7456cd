"""The reblurring module M_R of "Clean Images are Hard to Reblur" (Nah et al., ICLR 2022).

A deliberately weak network: conv -> n ResBlocks -> conv, with the DeepDeblur mean shift. It learns
to amplify whatever blur is left in a deblurred image; a truly sharp image should pass through
unchanged (the L_Sharp term teaches that). Keep it small: a strong M_R can "reblur" anything.
"""

from torch import nn

from deblur.archs.blocks import ResBlock, conv


class Reblur(nn.Module):
    def __init__(self, width: int = 32, blocks: int = 1, kernel: int = 5):
        super().__init__()
        self.head = conv(3, width, kernel, relu=False)
        self.body = nn.Sequential(*(ResBlock(width, kernel) for _ in range(blocks)))
        self.tail = conv(width, 3, kernel, relu=False)

    def forward(self, x):
        # mean shift: the network works on values centred on zero
        return self.tail(self.body(self.head(x - 0.5))) + 0.5
