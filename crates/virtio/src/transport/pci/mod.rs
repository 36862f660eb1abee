//! virtio-pci (virtio 1.2, section 4.1): the PCI transport's pieces.

pub mod msix;
