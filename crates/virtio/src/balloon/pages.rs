//! Which 4 KiB guest pages are in the balloon, and which host pages that
//! leaves wholly unused.
//!
//! The host can only give back whole host pages. With 4 KiB host pages each
//! inflated guest page is one; with larger ones (16 KiB, 64 KiB) a host page
//! goes back only once every guest page in it is in the balloon, which may
//! take several requests: hence a bitmap of the balloon over guest RAM
//! (one bit per 4 KiB: 32 KiB per GiB).

use super::BALLOON_PAGE;

/// Guest-physical bytes `[addr, addr + len)`, inside one RAM region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestRange {
    pub addr: u64,
    pub len: u64,
}

/// One RAM region: where it starts, and its pages in the balloon.
struct Region {
    start: u64,
    pages: u64,
    bits: Vec<u64>,
}

impl Region {
    fn get(&self, page: u64) -> bool {
        let word = usize::try_from(page / 64).ok();
        word.and_then(|w| self.bits.get(w))
            .is_some_and(|w| w & (1 << (page % 64)) != 0)
    }

    fn set(&mut self, page: u64, on: bool) {
        let word = usize::try_from(page / 64).ok();
        if let Some(w) = word.and_then(|w| self.bits.get_mut(w)) {
            if on {
                *w |= 1 << (page % 64);
            } else {
                *w &= !(1 << (page % 64));
            }
        }
    }
}

/// The balloon's pages over guest RAM, for a host page size.
pub struct BalloonPages {
    regions: Vec<Region>,
    /// Host page size in bytes (a power of two, at least 4 KiB).
    host_page: u64,
}

impl BalloonPages {
    /// An empty balloon over RAM `regions` (start, length in bytes).
    /// Host pages smaller than 4 KiB count as 4 KiB.
    pub fn new(regions: impl IntoIterator<Item = (u64, u64)>, host_page: u64) -> Self {
        let host_page = host_page.max(BALLOON_PAGE).next_power_of_two();
        let regions = regions
            .into_iter()
            .map(|(start, len)| {
                let pages = len / BALLOON_PAGE;
                let words = usize::try_from(pages.div_ceil(64)).unwrap_or(0);
                Region {
                    start,
                    pages,
                    bits: vec![0; words],
                }
            })
            .collect();
        BalloonPages { regions, host_page }
    }

    /// Guest pages per host page.
    fn per_host_page(&self) -> u64 {
        self.host_page / BALLOON_PAGE
    }

    /// The region and page index of `pfn`, if it is guest RAM.
    fn locate(&self, pfn: u32) -> Option<(usize, u64)> {
        let addr = u64::from(pfn) * BALLOON_PAGE;
        self.regions.iter().enumerate().find_map(|(i, r)| {
            let index = addr.checked_sub(r.start)? / BALLOON_PAGE;
            (index < r.pages).then_some((i, index))
        })
    }

    /// Puts `pfns` in the balloon; PFNs outside RAM are ignored. Returns
    /// the host pages (as guest ranges, adjacent ones merged) that are now
    /// wholly in the balloon and can be given back.
    pub fn inflate(&mut self, pfns: &[u32]) -> Vec<GuestRange> {
        let k = self.per_host_page();
        let mut touched: Vec<(usize, u64)> = Vec::with_capacity(pfns.len());
        for &pfn in pfns {
            if let Some((region, page)) = self.locate(pfn) {
                self.regions[region].set(page, true);
                touched.push((region, page / k));
            }
        }
        touched.sort_unstable();
        touched.dedup();
        let mut ranges: Vec<GuestRange> = Vec::new();
        for (region, host_page) in touched {
            let r = &self.regions[region];
            let first = host_page * k;
            // Region starts are host-page aligned in the mapping; a host page
            // that would run past the region's end is never given back.
            if first + k > r.pages || !(first..first + k).all(|p| r.get(p)) {
                continue;
            }
            let range = GuestRange {
                addr: r.start + first * BALLOON_PAGE,
                len: self.host_page,
            };
            match ranges.last_mut() {
                Some(last) if last.addr + last.len == range.addr => last.len += range.len,
                _ => ranges.push(range),
            }
        }
        ranges
    }

    /// Takes `pfns` out of the balloon; PFNs outside RAM are ignored.
    pub fn deflate(&mut self, pfns: &[u32]) {
        for &pfn in pfns {
            if let Some((region, page)) = self.locate(pfn) {
                self.regions[region].set(page, false);
            }
        }
    }

    /// Number of guest pages in the balloon.
    pub fn count(&self) -> u64 {
        self.regions
            .iter()
            .flat_map(|r| &r.bits)
            .map(|w| u64::from(w.count_ones()))
            .sum()
    }

    /// The whole host pages inside guest bytes `[addr, addr + len)`, cut
    /// to the RAM region that holds `addr`; `None` when there are none.
    pub fn host_pages_within(&self, addr: u64, len: u64) -> Option<GuestRange> {
        let end = addr.checked_add(len)?;
        let r = self
            .regions
            .iter()
            .find(|r| addr >= r.start && addr - r.start < r.pages * BALLOON_PAGE)?;
        let region_end = r.start + r.pages * BALLOON_PAGE;
        let offset = addr - r.start;
        let first = offset.checked_next_multiple_of(self.host_page)?;
        let last = (end.min(region_end) - r.start) / self.host_page * self.host_page;
        (first < last).then(|| GuestRange {
            addr: r.start + first,
            len: last - first,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    /// Guest RAM as the VMM lays it out for a small guest with a hole: a
    /// region below and one above 4 GiB.
    fn pages(host_page: u64) -> BalloonPages {
        BalloonPages::new([(0, 16 * MIB), (4096 * MIB, 8 * MIB)], host_page)
    }

    fn pfn(addr: u64) -> u32 {
        u32::try_from(addr / BALLOON_PAGE).unwrap()
    }

    #[test]
    fn four_kib_host_pages_go_back_one_by_one() {
        let mut b = pages(4096);
        let ranges = b.inflate(&[pfn(0x3000), pfn(0x1000), pfn(0x2000), pfn(0x9000)]);
        assert_eq!(
            ranges,
            vec![
                GuestRange {
                    addr: 0x1000,
                    len: 0x3000
                },
                GuestRange {
                    addr: 0x9000,
                    len: 0x1000
                }
            ],
            "sorted and merged"
        );
        assert_eq!(b.count(), 4);
        b.deflate(&[pfn(0x2000)]);
        assert_eq!(b.count(), 3);
    }

    #[test]
    fn large_host_pages_go_back_only_when_full() {
        let mut b = pages(16384);
        // Three of the four guest pages of the host page at 0x4000.
        assert!(b
            .inflate(&[pfn(0x4000), pfn(0x5000), pfn(0x6000)])
            .is_empty());
        // The fourth, in a later request, completes it.
        assert_eq!(
            b.inflate(&[pfn(0x7000)]),
            vec![GuestRange {
                addr: 0x4000,
                len: 0x4000
            }]
        );
        // Deflating one page and inflating it again gives it back again.
        b.deflate(&[pfn(0x5000)]);
        assert!(b.inflate(&[pfn(0x6000)]).is_empty());
        assert_eq!(b.inflate(&[pfn(0x5000)]).len(), 1);
    }

    #[test]
    fn sixty_four_kib_host_pages_in_the_high_region() {
        let mut b = pages(65536);
        let base = 4096 * MIB;
        let all: Vec<u32> = (0..32).map(|i| pfn(base + i * 0x1000)).collect();
        assert_eq!(
            b.inflate(&all),
            vec![GuestRange {
                addr: base,
                len: 0x2_0000
            }]
        );
    }

    #[test]
    fn pfns_outside_ram_are_ignored() {
        let mut b = pages(4096);
        let hole = pfn(3 * 1024 * MIB);
        let past_low = pfn(16 * MIB);
        let past_high = pfn(4104 * MIB);
        assert!(b.inflate(&[hole, past_low, past_high, u32::MAX]).is_empty());
        b.deflate(&[hole, u32::MAX]);
        assert_eq!(b.count(), 0);
    }

    #[test]
    fn host_page_at_the_end_of_an_odd_region_is_kept() {
        // 20 KiB of RAM with 16 KiB host pages: the last 4 KiB page shares
        // a host page with no guest memory.
        let mut b = BalloonPages::new([(0, 0x5000)], 16384);
        assert!(b.inflate(&[4]).is_empty());
        assert_eq!(b.count(), 1);
    }

    #[test]
    fn reported_ranges_shrink_to_whole_host_pages() {
        let b = pages(16384);
        assert_eq!(
            b.host_pages_within(0x1000, 0x9000),
            Some(GuestRange {
                addr: 0x4000,
                len: 0x4000
            })
        );
        assert_eq!(b.host_pages_within(0x1000, 0x3000), None);
        // Cut at the end of the region.
        assert_eq!(
            b.host_pages_within(15 * MIB, 4 * MIB),
            Some(GuestRange {
                addr: 15 * MIB,
                len: MIB
            })
        );
        assert_eq!(b.host_pages_within(3 * 1024 * MIB, MIB), None, "hole");
        assert_eq!(b.host_pages_within(u64::MAX - 10, 100), None);
        assert_eq!(b.host_pages_within(0, 0), None);
    }
}
